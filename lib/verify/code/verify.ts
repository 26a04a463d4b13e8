// Judges a code response: the program in its last fenced block, run in the sandbox against stdin/stdout
// cases (one run each) and/or assert-style test code (one run of program + tests), first failure wins.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { CodeFailure, CodeReport, VerifyResult } from '../types.js';
import { DEFAULT_SANDBOX_LIMITS, runSandboxed, sandboxContainment, type Containment, type SandboxLimits, type SandboxOutcome } from './sandbox.js';
import { parseCodeTests, type CodeLanguage, type CodeTests } from './tests.js';

export interface CodeVerifierOptions {
  /** Per-run limits; unset fields take DEFAULT_SANDBOX_LIMITS. */
  limits?: Partial<SandboxLimits>;
  /** Force a sandbox tier instead of the best available one. */
  containment?: Containment;
}

interface Runtime {
  file: string;
  argv: string[];
  /** Runs `file` (program + assert code) under a harness that reads a nonce from stdin and prints it once `file` ends. */
  harnessArgv: string[];
  exposeDirs: string[];
}

// Exit status 0 alone does not show that assert code ran: the program could exit early (sys.exit(0), process.exit(0),
// an atexit os._exit(0)). The harness reads the run's nonce from stdin before the program starts (so it is in no file,
// argument or environment variable, and the program then reads an empty stdin), runs main.* as the main module, and
// prints the nonce only when it returns normally, i.e. after the last assert.
const PYTHON_HARNESS = String.raw`
import os, runpy, sys
def harness():
    nonce = b''
    while not nonce.endswith(b'\n'):
        chunk = os.read(0, 256)
        if not chunk:
            break
        nonce += chunk
    runpy.run_path('main.py', run_name='__main__')
    sys.stdout.flush()
    os.write(1, b'\n' + nonce)
harness()
`;
const JS_HARNESS = String.raw`{
  const fs = require('fs');
  const chunk = Buffer.alloc(256);
  let nonce = '';
  while (!nonce.endsWith('\n')) {
    const read = fs.readSync(0, chunk, 0, chunk.length, null);
    if (read === 0) break;
    nonce += chunk.toString('latin1', 0, read);
  }
  process.argv[1] = require('path').resolve('main.js');
  require('module')._load(process.argv[1], null, true);
  process.stdout.write('\n' + nonce);
}`;

const FENCE_TAGS: Record<CodeLanguage, string[]> = {
  python: ['python', 'python3', 'py'],
  javascript: ['javascript', 'js', 'node', 'nodejs'],
};

/** The program in a response: its last fenced block tagged for the language (or untagged), else the last block, else the whole text. */
export function extractProgram(response: string, language: CodeLanguage): string | null {
  const blocks = [...response.matchAll(/```([^\n`]*)\n([\s\S]*?)```/g)].map(([, tag, body]) => ({
    tag: tag.trim().toLowerCase(),
    body,
  }));
  const tagged = blocks.filter(({ tag }) => tag === '' || FENCE_TAGS[language].includes(tag));
  const program = blocks.length === 0 ? response : (tagged.at(-1) ?? blocks.at(-1)!).body;
  return program.trim() === '' ? null : program;
}

const execFileAsync = promisify(execFile);

async function resolveRuntime(language: CodeLanguage): Promise<Runtime> {
  if (language === 'javascript') {
    const node = await realpath(process.execPath);
    return { file: 'main.js', argv: [node, 'main.js'], harnessArgv: [node, '-e', JS_HARNESS], exposeDirs: [dirname(dirname(node))] };
  }
  // The interpreter's real path and prefix (a pyenv shim or venv python points elsewhere); the sandbox exposes both.
  const { stdout } = await execFileAsync('python3', ['-c', 'import sys; print(sys.executable); print(sys.base_prefix)']);
  const [executable, prefix] = stdout.trim().split('\n');
  const python = await realpath(executable);
  return {
    file: 'main.py',
    argv: [python, '-I', 'main.py'],
    harnessArgv: [python, '-I', '-c', PYTHON_HARNESS],
    exposeDirs: [await realpath(prefix), dirname(python)],
  };
}

const runtimes = new Map<CodeLanguage, Promise<Runtime>>();
function runtimeFor(language: CodeLanguage): Promise<Runtime> {
  let runtime = runtimes.get(language);
  if (runtime === undefined) {
    runtime = resolveRuntime(language);
    runtime.catch(() => runtimes.delete(language));
    runtimes.set(language, runtime);
  }
  return runtime;
}

const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i;
const INTEGER = /^[-+]?\d+$/;
const OUTPUT_FLOAT_TOLERANCE = 1e-6;

/**
 * Output equality as competitive-programming judges do it: trailing spaces and blank lines are ignored;
 * failing that, whitespace-separated tokens must match, integers exactly and other numbers within 1e-6 (absolute or
 * relative).
 */
export function outputsMatch(actual: string, expected: string): boolean {
  const lines = (text: string) =>
    text
      .replace(/\r\n?/g, '\n')
      .replace(/\s+$/, '')
      .split('\n')
      .map((line) => line.trimEnd());
  const [actualLines, expectedLines] = [lines(actual), lines(expected)];
  if (actualLines.length === expectedLines.length && actualLines.every((line, index) => line === expectedLines[index])) return true;
  const [actualTokens, expectedTokens] = [actual.trim().split(/\s+/), expected.trim().split(/\s+/)];
  return (
    actualTokens.length === expectedTokens.length &&
    actualTokens.every((token, index) => {
      const want = expectedTokens[index];
      if (token === want) return true;
      if (!NUMBER.test(token) || !NUMBER.test(want)) return false;
      // As floats, 999999000 would be within 1e-6 of 999999937: two integers are exact answers.
      if (INTEGER.test(token) && INTEGER.test(want)) return BigInt(token) === BigInt(want);
      const [a, b] = [Number(token), Number(want)];
      return Math.abs(a - b) <= OUTPUT_FLOAT_TOLERANCE * Math.max(1, Math.abs(b));
    })
  );
}

const STDERR_TAIL_CHARS = 2_000;

function failureOf(test: number, outcome: SandboxOutcome): CodeFailure {
  return { test, exitCode: outcome.exitCode, signal: outcome.signal, stderrTail: outcome.stderr.slice(-STDERR_TAIL_CHARS) };
}

interface Run {
  source: string;
  stdin: string;
  /** stdout a stdio case must print. */
  expected?: string;
  /** The assert run's nonce, which the harness prints on stdout once the tests have run to their end. */
  nonce?: string;
}

/** Why a run did not pass, or null when it did. */
function runVerdict(outcome: SandboxOutcome, { expected, nonce }: Run): { status: 'fail' | 'timeout' | 'error'; detail: string } | null {
  if (outcome.setupFailed) return { status: 'error', detail: 'the sandbox could not be set up' };
  if (outcome.timedOut) return { status: 'timeout', detail: 'time limit exceeded' };
  if (outcome.outputLimitExceeded) return { status: 'fail', detail: 'output limit exceeded' };
  if (outcome.exitCode !== 0) {
    return { status: 'fail', detail: outcome.signal ? `killed by ${outcome.signal}` : `exited with status ${outcome.exitCode}` };
  }
  if (expected !== undefined && !outputsMatch(outcome.stdout, expected)) return { status: 'fail', detail: 'wrong output' };
  if (nonce !== undefined && !outcome.stdout.includes(nonce)) return { status: 'fail', detail: 'the tests did not run to their end' };
  return null;
}

/** Runs the response's program against the tests; never throws (problems become 'error' results). */
export async function verifyCode(response: string, tests: CodeTests | string, options: CodeVerifierOptions = {}): Promise<VerifyResult> {
  let parsed;
  try {
    parsed = parseCodeTests(tests);
  } catch (error) {
    return { status: 'error', extracted: null, detail: (error as Error).message };
  }
  const program = extractProgram(response, parsed.language);
  if (program === null) return { status: 'fail', extracted: null, detail: 'no program in the response' };
  let runtime: Runtime;
  let containment: Containment | null;
  try {
    [runtime, containment] = await Promise.all([runtimeFor(parsed.language), options.containment ?? sandboxContainment()]);
  } catch (error) {
    return { status: 'error', extracted: program, detail: `no ${parsed.language} interpreter: ${(error as Error).message}` };
  }
  if (containment === null) return { status: 'error', extracted: program, detail: 'no sandbox available on this machine' };

  // A stdio case checks stdout; the assert run needs exit status 0 and its nonce (its stdout is not compared).
  const nonce = randomBytes(16).toString('hex');
  const runs: Run[] = [
    ...parsed.stdio.map(({ input, output }) => ({ source: program, stdin: input, expected: output })),
    ...(parsed.assert === undefined ? [] : [{ source: `${program}\n\n${parsed.assert}\n`, stdin: `${nonce}\n`, nonce }]),
  ];
  const limits = { ...DEFAULT_SANDBOX_LIMITS, ...options.limits };
  const report: CodeReport = { language: parsed.language, containment, passed: 0, total: runs.length };
  for (const [test, run] of runs.entries()) {
    let outcome: SandboxOutcome;
    try {
      outcome = await runSandboxed(
        {
          argv: run.nonce === undefined ? runtime.argv : runtime.harnessArgv,
          files: { [runtime.file]: run.source },
          stdin: run.stdin,
          exposeDirs: runtime.exposeDirs,
          limits,
        },
        containment,
      );
    } catch (error) {
      return { status: 'error', extracted: program, detail: `test ${test}: ${(error as Error).message}`, code: report };
    }
    const verdict = runVerdict(outcome, run);
    if (verdict !== null) {
      return {
        status: verdict.status,
        extracted: program,
        detail: `test ${test}: ${verdict.detail}`,
        code: { ...report, failure: failureOf(test, outcome) },
      };
    }
    report.passed += 1;
  }
  return { status: 'pass', extracted: program, code: report };
}
