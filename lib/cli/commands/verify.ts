import type { Readable } from 'node:stream';
import type { CommandModule } from 'yargs';
import { z } from 'zod';
import { MAX_LINE_LENGTH, readLines } from '../../data/jsonl.js';
import { VerifierPool } from '../../verify/pool.js';
import { errorResult, VERIFY_KINDS, type VerifyKind, type VerifyRequest, type VerifyResult } from '../../verify/types.js';

interface VerifyArgs {
  kind: VerifyKind;
  response?: string;
  'ground-truth'?: string;
  tests?: string;
  workers?: number;
  'timeout-ms': number;
  'time-limit-ms'?: number;
  'memory-mb'?: number;
}

/** One input line. For code, tests may instead come as ground_truth (a JSON string, as in Eurus-2 rows). */
const lineSchema = z.object({ response: z.string(), ground_truth: z.string().optional(), tests: z.unknown().optional() });

function requestOf(kind: VerifyKind, response: string, groundTruth: string | undefined, tests: unknown): VerifyRequest {
  if (kind !== 'code') return { kind, response, groundTruth };
  return { kind, response, tests: (tests ?? groundTruth) as VerifyRequest['tests'] };
}

/** Lines judged at once; reading stops while this many results wait to be printed. */
const MAX_LINES_IN_FLIGHT = 256;

/**
 * Judges JSON lines `{"response", "ground_truth", "tests"?}` and writes one JSON result per input line,
 * in input order. A line that is empty, not JSON, not of that shape or longer than `maxLineLength` characters gets an
 * 'error' result.
 */
export async function verifyJsonLines(
  input: Readable,
  kind: VerifyKind,
  pool: VerifierPool,
  write: (text: string) => void,
  maxLineLength = MAX_LINE_LENGTH,
): Promise<void> {
  const pending: Promise<VerifyResult>[] = [];
  let lineNumber = 0;
  for await (const line of readLines(input, maxLineLength)) {
    lineNumber += 1;
    if (line === null) {
      pending.push(Promise.resolve(errorResult(`line ${lineNumber}: longer than ${maxLineLength} characters, the most a line may hold`)));
      continue;
    }
    let parsed;
    try {
      parsed = lineSchema.safeParse(JSON.parse(line));
    } catch (error) {
      pending.push(Promise.resolve(errorResult(`line ${lineNumber}: not JSON: ${(error as Error).message}`)));
      continue;
    }
    if (!parsed.success) {
      pending.push(Promise.resolve(errorResult(`line ${lineNumber}: ${z.prettifyError(parsed.error)}`)));
      continue;
    }
    const { response, ground_truth, tests } = parsed.data;
    pending.push(pool.verify(requestOf(kind, response, ground_truth, tests)));
    while (pending.length >= MAX_LINES_IN_FLIGHT) write(`${JSON.stringify(await pending.shift())}\n`);
  }
  for (const result of pending) write(`${JSON.stringify(await result)}\n`);
}

/** `prefix-rl verify`: judge one response, or a stream of JSON lines. */
export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify',
  describe: 'Judge responses (math, code, controlled): one from --response, else JSON lines from stdin; prints JSON results',
  builder: (y) =>
    y
      .option('kind', { choices: VERIFY_KINDS, demandOption: true, describe: 'Verifier' })
      .option('response', { type: 'string', describe: 'One response to judge (else JSON lines are read from stdin)' })
      .option('ground-truth', { type: 'string', describe: 'Reference answer (math, controlled); code: tests JSON' })
      .option('tests', { type: 'string', describe: 'code: tests JSON, {"stdio": [{"input", "output"}], "assert": "..."}' })
      .option('workers', { type: 'number', describe: 'Worker threads (default: cores, at most 4)' })
      .option('timeout-ms', { type: 'number', default: 10_000, describe: 'Budget per math/controlled item' })
      .option('time-limit-ms', { type: 'number', describe: 'code: wall time of each test run' })
      .option('memory-mb', { type: 'number', describe: 'code: address-space limit of each test run' }),
  handler: async (args) => {
    const limits = {
      ...(args['time-limit-ms'] !== undefined && { timeMs: args['time-limit-ms'] }),
      ...(args['memory-mb'] !== undefined && { memoryMb: args['memory-mb'] }),
    };
    const pool = new VerifierPool({ workers: args.workers, timeoutMs: args['timeout-ms'], code: { limits } });
    try {
      if (args.response === undefined) {
        await verifyJsonLines(process.stdin, args.kind, pool, (text) => process.stdout.write(text));
      } else {
        const result = await pool.verify(requestOf(args.kind, args.response, args['ground-truth'], args.tests));
        process.stdout.write(`${JSON.stringify(result)}\n`);
      }
    } finally {
      await pool.close();
    }
  },
};
