import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  extractProgram,
  outputsMatch,
  parseCodeTests,
  sandboxContainment,
  verifyCode,
  type CodeVerifierOptions,
  type VerifyResult,
} from '../lib/verify/index.js';

const containment = await sandboxContainment();
/** Containment tests need the namespace sandbox (Linux with unshare); elsewhere they are skipped. */
const describeNamespaces = containment === 'namespaces' ? describe : describe.skip;

const python = (code: string) => `Here is my solution.\n\n\`\`\`python\n${code}\n\`\`\`\n`;

/** Runs a Python program once and expects it to print `expected` (its own verdict on what it tried). */
function expectOutput(code: string, expected: string, options?: CodeVerifierOptions): Promise<VerifyResult> {
  return verifyCode(python(code), { stdio: [{ input: '', output: expected }] }, options);
}

/**
 * Live Python processes on the host (zombies excluded: they await the host init's reaping, nothing runs) — what a
 * sandboxed program leaves if anything. Other test files run at the same time (node ranks, servers, short verifier
 * runs of their own), so only interpreters count, and a count taken after a run waits up to 3 s for the host's
 * other short runs to end: a program left behind sleeps for a minute.
 */
const pythonCount = () =>
  execFileSync('ps', ['-e', '-o', 'stat=,comm='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter((line) => !line.trim().startsWith('Z') && /\spython/.test(line)).length;
async function settledCount(atMost: number): Promise<number> {
  let count = pythonCount();
  for (let waited = 0; count > atMost && waited < 3000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    count = pythonCount();
  }
  return count;
}

describe('code verifier judging', () => {
  test('a correct program passes every stdin/stdout case', async () => {
    const result = await verifyCode(python('a, b = map(int, input().split())\nprint(a + b)'), {
      stdio: [
        { input: '1 2\n', output: '3\n' },
        { input: '-5 5', output: '0' },
      ],
    });
    expect(result).toMatchObject({ status: 'pass', code: { language: 'python', containment, passed: 2, total: 2 } });
    expect(result.extracted).toBe('a, b = map(int, input().split())\nprint(a + b)\n');
  });

  test('the first wrong output fails, with the test index', async () => {
    const result = await verifyCode(python('print(int(input()) * 2)'), {
      stdio: [
        { input: '2', output: '4' },
        { input: '3', output: '7' },
        { input: '4', output: '8' },
      ],
    });
    expect(result).toMatchObject({
      status: 'fail',
      detail: 'test 1: wrong output',
      code: { passed: 1, total: 3, failure: { test: 1, exitCode: 0 } },
    });
  });

  test('a runtime error fails with its exit status and stderr tail', async () => {
    const result = await verifyCode(python('raise ValueError("boom")'), { stdio: [{ input: '', output: '' }] });
    expect(result).toMatchObject({ status: 'fail', detail: 'test 0: exited with status 1', code: { failure: { exitCode: 1, signal: null } } });
    expect(result.code?.failure?.stderrTail).toContain('ValueError: boom');
  });

  test('assert-style tests run appended to the program', async () => {
    const program = python('def add(a, b):\n    return a + b');
    expect((await verifyCode(program, { assert: 'assert add(2, 3) == 5\nassert add(-1, 1) == 0' })).status).toBe('pass');
    const failing = await verifyCode(program, { assert: 'assert add(2, 2) == 5' });
    expect(failing.status).toBe('fail');
    expect(failing.code?.failure?.stderrTail).toContain('AssertionError');
  });

  test('assert tests pass only when they run to their end: exiting early with status 0 fails', async () => {
    const wrong = 'def add(a, b):\n    return a - b\n';
    const assert = 'assert add(2, 3) == 5';
    for (const exit of [
      'import sys\nsys.exit(0)',
      'import os\nos._exit(0)',
      'import atexit, os\natexit.register(lambda: os._exit(0))',
      'import sys\nsys.excepthook = lambda *args: None',
      // What the program can see of the run without inspecting the harness (stdin, environment, files) does not give the proof away.
      'import os, sys\nprint(sys.stdin.read(), open("/proc/self/environ").read(), *[open(f).read() for f in os.listdir(".")])\nsys.exit(0)',
    ]) {
      const result = await verifyCode(python(`${wrong}${exit}`), { assert });
      expect(result).toMatchObject({ status: 'fail', code: { passed: 0, total: 1 } });
    }
    const js = (code: string) => `\`\`\`js\nfunction add(a, b) {\n  return a - b;\n}\n${code}\n\`\`\``;
    const jsAssert = 'require("assert").strictEqual(add(2, 3), 5);';
    for (const exit of ['process.exit(0);', 'process.on("exit", () => { process.exitCode = 0; });', 'process.on("uncaughtException", () => {});']) {
      expect((await verifyCode(js(exit), { language: 'javascript', assert: jsAssert })).status).toBe('fail');
    }
    // Right programs still pass, whatever they print; they run as the main module and see an empty stdin, as before.
    const right = python('import sys\ndef add(a, b):\n    return a + b\nprint("hello")');
    expect((await verifyCode(right, { assert: `${assert}\nassert __name__ == "__main__" and sys.stdin.read() == ""` })).status).toBe('pass');
    const rightJs = '```js\nconst add = (a, b) => a + b;\nconsole.log("hello");\n```';
    const mainAssert = 'require("assert").ok(require.main === module && require("fs").readFileSync(0, "utf8") === "");';
    expect((await verifyCode(rightJs, { language: 'javascript', assert: `${jsAssert}\n${mainAssert}` })).status).toBe('pass');
  });

  test('APPS-style {inputs, outputs} tests and JSON strings are accepted', async () => {
    const tests = JSON.stringify({ inputs: ['3\n', '10\n'], outputs: ['9\n', '100\n'] });
    expect((await verifyCode(python('n = int(input())\nprint(n * n)'), tests)).status).toBe('pass');
  });

  test('JavaScript programs run under node', async () => {
    const response =
      '```js\nconst lines = require("fs").readFileSync(0, "utf8").trim().split("\\n");\nconsole.log(lines.map(Number).reduce((a, b) => a + b));\n```';
    const result = await verifyCode(response, { language: 'javascript', stdio: [{ input: '1\n2\n3\n', output: '6' }] });
    expect(result).toMatchObject({ status: 'pass', code: { language: 'javascript' } });
  });

  test('a response without a program fails; invalid tests are an error', async () => {
    expect((await verifyCode('```python\n\n```', { assert: 'pass' })).status).toBe('fail');
    expect((await verifyCode(python('print(1)'), { stdio: [] })).status).toBe('error');
    expect((await verifyCode(python('print(1)'), { fn_name: 'f', inputs: [[1]], outputs: [[2]] } as never)).status).toBe('error');
    expect((await verifyCode(python('print(1)'), '{not json')).status).toBe('error');
  });

  test('runaway output stops the run', async () => {
    const started = Date.now();
    const result = await expectOutput('while True:\n    print("x" * 1000)', 'x', { limits: { outputBytes: 100_000 } });
    expect(result).toMatchObject({ status: 'fail', detail: 'test 0: output limit exceeded' });
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});

describe('program extraction and output comparison', () => {
  test('the last fenced block of the language wins; untagged blocks count; no fence means the whole text', () => {
    const response = '```python\nprint(1)\n```\ntext\n```bash\nls\n```\n```py\nprint(2)\n```\n```\nprint(3)\n```';
    expect(extractProgram(response, 'python')).toBe('print(3)\n');
    expect(extractProgram('```python\nprint(1)\n```\n```bash\nls\n```', 'python')).toBe('print(1)\n');
    expect(extractProgram('```bash\nls\n```', 'python')).toBe('ls\n');
    expect(extractProgram('print(4)', 'python')).toBe('print(4)');
    expect(extractProgram('  \n', 'python')).toBeNull();
  });

  test.each([
    ['3\n', '3', true],
    ['3  \n\n\n', '3', true],
    ['1 2\r\n3 4\r\n', '1 2\n3 4', true],
    ['1 2 3 4', '1 2\n3 4', true],
    ['0.3333333', '0.33333333', true],
    ['0.333', '0.3333', false],
    ['3', '4', false],
    ['YES', 'yes', false],
    ['1 2', '1 2 3', false],
    // Integers compare exactly, whatever their size; only tokens with a fraction or exponent get the tolerance.
    ['999999000', '999999937', false],
    ['123456789000', '123456789012', false],
    ['123456789012345678901234567891', '123456789012345678901234567890', false],
    ['007 -0', '7 0', true],
    ['1000000', '1000000.0000001', true],
    ['1e6', '1000000', true],
  ])('%j vs %j → %s', (actual, expected, same) => {
    expect(outputsMatch(actual, expected)).toBe(same);
  });

  test('tests are checked and brought to one form', () => {
    expect(parseCodeTests({ inputs: ['1'], outputs: ['2'] })).toEqual({
      language: 'python',
      stdio: [{ input: '1', output: '2' }],
      assert: undefined,
    });
    expect(() => parseCodeTests({ inputs: ['1', '2'], outputs: ['2'] })).toThrow('invalid code tests');
    expect(() => parseCodeTests({ language: 'cobol', assert: 'x' })).toThrow('invalid code tests');
  });
});

describeNamespaces('sandbox containment (namespaces)', () => {
  test('an infinite loop times out near its limit while the test process keeps running', async () => {
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 50);
    const started = Date.now();
    const result = await expectOutput('while True:\n    pass', '', { limits: { timeMs: 1_000 } });
    const elapsed = Date.now() - started;
    clearInterval(ticker);
    expect(result).toMatchObject({ status: 'timeout', detail: 'test 0: time limit exceeded', code: { failure: { signal: 'SIGKILL' } } });
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(4_000);
    expect(ticks).toBeGreaterThanOrEqual(10);
  });

  test('a program that ignores SIGTERM and sleeps in a new session is still killed', async () => {
    const code =
      'import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nos.setsid()\nif os.fork() == 0:\n    time.sleep(60)\ntime.sleep(60)';
    const before = pythonCount();
    const result = await expectOutput(code, '', { limits: { timeMs: 1_000 } });
    expect(result.status).toBe('timeout');
    expect(await settledCount(before + 2)).toBeLessThanOrEqual(before + 2);
  });

  test('a memory bomb fails with MemoryError under the address-space limit', async () => {
    const grow = await expectOutput('blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))', '', { limits: { memoryMb: 256 } });
    expect(grow.status).toBe('fail');
    expect(grow.code?.failure?.stderrTail).toContain('MemoryError');
    const huge = await expectOutput('x = bytearray(64 * 1024 ** 3)', '', { limits: { memoryMb: 256 } });
    expect(huge.status).toBe('fail');
    expect(huge.code?.failure?.stderrTail).toContain('MemoryError');
  });

  test('fork stops at the process limit and no process outlives the run', async () => {
    const code = [
      'import errno, os, time',
      'children = 0',
      'try:',
      '    while True:',
      '        if os.fork() == 0:',
      '            time.sleep(60)',
      '            os._exit(0)',
      '        children += 1',
      'except OSError as error:',
      '    print("contained" if error.errno == errno.EAGAIN and children < 32 else f"{children} {error}")',
    ].join('\n');
    const before = pythonCount();
    const result = await expectOutput(code, 'contained', { limits: { processes: 32 } });
    expect(result.status).toBe('pass');
    expect(await settledCount(before + 2)).toBeLessThanOrEqual(before + 2);
  });

  test('a recursive fork bomb is contained and cleaned up; the host keeps working', async () => {
    const code = 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass';
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 50);
    const before = pythonCount();
    const result = await expectOutput(code, '', { limits: { timeMs: 2_000, processes: 32 } });
    clearInterval(ticker);
    expect(result.status).toBe('timeout');
    expect(ticks).toBeGreaterThanOrEqual(20);
    expect(await settledCount(before + 2)).toBeLessThanOrEqual(before + 2);
    expect(execFileSync('echo', ['the host can still fork'], { encoding: 'utf8' })).toBe('the host can still fork\n');
  });

  test('the network is unreachable, loopback included', async () => {
    let connections = 0;
    const server = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const code = [
      'import socket',
      'def attempt(host, port):',
      '    try:',
      '        socket.create_connection((host, port), timeout=2).close()',
      '        return "connected"',
      '    except OSError:',
      '        return "blocked"',
      `print(attempt("127.0.0.1", ${port}), attempt("1.1.1.1", 53), attempt("localhost", ${port}))`,
    ].join('\n');
    try {
      expect((await expectOutput(code, 'blocked blocked blocked')).status).toBe('pass');
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  test('writes land only in /work and /tmp of the sandbox; host paths are read-only or invisible', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'prefix-rl-outside-'));
    await chmod(outside, 0o777);
    const targets = [join(outside, 'pwned'), join(process.cwd(), 'pwned'), '/etc/pwned', '/usr/pwned', '/pwned', '/root/pwned'];
    const code = [
      'import os',
      'def write(path):',
      '    try:',
      '        with open(path, "w") as file:',
      '            file.write("x")',
      '        return "wrote"',
      '    except OSError:',
      '        return "denied"',
      `print(" ".join(write(path) for path in ${JSON.stringify(targets)}))`,
      'print(write("/work/ok"), write("/tmp/ok"), os.getcwd(), os.environ["HOME"])',
      `print(os.path.exists(${JSON.stringify(join(process.cwd(), 'package.json'))}), os.path.exists(${JSON.stringify(outside)}))`,
    ].join('\n');
    try {
      const expected = `${targets.map(() => 'denied').join(' ')}\nwrote wrote /work /work\nFalse False`;
      const result = await expectOutput(code, expected);
      expect(result.status).toBe('pass');
      for (const target of targets) expect(existsSync(target)).toBe(false);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  test('the program sees a clean environment and holds no capabilities or root uid', async () => {
    process.env.PREFIX_RL_TEST_SECRET = 'do-not-leak';
    const code = [
      'import os',
      'capabilities = int(open("/proc/self/status").read().split("CapEff:")[1].split()[0], 16)',
      'print(sorted(os.environ), capabilities, os.getuid() != 0 or os.path.exists("/proc/self/uid_map"))',
    ].join('\n');
    try {
      const result = await expectOutput(code, "['HOME', 'LANG', 'PATH', 'TMPDIR'] 0 True");
      expect(result.status).toBe('pass');
    } finally {
      delete process.env.PREFIX_RL_TEST_SECRET;
    }
  });

  test('the program sees only its own processes', async () => {
    expect((await expectOutput('import os\nprint(len([p for p in os.listdir("/proc") if p.isdigit()]) <= 3)', 'True')).status).toBe('pass');
  });
});

describe('sandbox containment (rlimits fallback)', () => {
  const options = { containment: 'rlimits' } as const;

  test('time and memory limits hold', async () => {
    const loop = await expectOutput('while True:\n    pass', '', { ...options, limits: { timeMs: 1_000 } });
    expect(loop).toMatchObject({ status: 'timeout', code: { containment: 'rlimits' } });
    const bomb = await expectOutput('blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))', '', { ...options, limits: { memoryMb: 256 } });
    expect(bomb.status).toBe('fail');
    expect(bomb.code?.failure?.stderrTail).toContain('MemoryError');
  });

  test('a correct program passes and background processes are killed with it', async () => {
    const before = pythonCount();
    const code = 'import os, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\nprint("done")';
    expect((await expectOutput(code, 'done', options)).status).toBe('pass');
    expect(await settledCount(before + 2)).toBeLessThanOrEqual(before + 2);
  });
});
