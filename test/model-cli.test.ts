// `prefix-rl logprobs`: JSON lines in, JSON lines out, against transformers' log-probs of the fixture.
import { jest } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../lib/cli/main.js';

const MODEL = join(process.cwd(), 'fixtures/models/llama-tiny');

let stdout: string[];
beforeEach(() => {
  stdout = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
});
afterEach(() => jest.restoreAllMocks());

/** Runs the CLI with `lines` on stdin and returns the parsed output lines. */
async function run(lines: string[], ...args: string[]): Promise<{ logprobs: number[] }[]> {
  jest.spyOn(process, 'stdin', 'get').mockReturnValue(Readable.from(lines.map((line) => line + '\n')) as unknown as typeof process.stdin);
  await main(['logprobs', '--model', MODEL, ...args]);
  return stdout.join('').trim().split('\n').map((line) => JSON.parse(line));
}

test('prints the log-prob of every token after the first, per line, matching transformers', async () => {
  const ref = JSON.parse(await readFile(join(MODEL, 'reference.json'), 'utf8')) as { input_ids: number[][]; logprobs: number[][] };
  const full = ref.input_ids[0];
  const right = ref.input_ids[1].slice(0, 8);
  // Batches of 2 pad the second line against the first; padding must not change anything.
  const out = await run([JSON.stringify({ input_ids: full }), '', JSON.stringify({ input_ids: right, id: 'extra fields pass' }), '{"input_ids":[7]}'], '--batch-size', '2');
  expect(out.map((line) => line.logprobs.length)).toEqual([11, 7, 0]);
  const close = (actual: number[], expected: number[]) => actual.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 4));
  close(out[0].logprobs, ref.logprobs[0]);
  close(out[1].logprobs, ref.logprobs[1].slice(0, 7));
});

test.each([
  ['not JSON', ['{"input_ids": [1, 2]}', 'nope'], /stdin:2: not JSON/],
  ['no tokens', ['{"input_ids": []}'], /stdin:1: input_ids: needs at least one token/],
  ['a token outside the vocabulary', ['{"input_ids": [1, 96]}'], /stdin:1: token 96 is outside the vocabulary \(size 96\)/],
])('a line with %s fails naming the line', async (_, lines, message) => {
  await expect(run(lines)).rejects.toThrow(message);
});

test('an unknown dtype is refused by the argument parser', async () => {
  await expect(run([], '--dtype', 'int8')).rejects.toThrow(/dtype/);
});
