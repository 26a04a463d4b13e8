// `prefix-rl logprobs` and `prefix-rl generate`: JSON lines in, JSON lines out, against transformers' outputs for the
// fixtures.
import { jest } from '@jest/globals';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { main } from '../lib/cli/main.js';
import { readSafetensors, writeSafetensors } from '../lib/model/index.js';
import { tidy } from '../lib/tensor/index.js';
import { captureStdout } from './helpers/stdout.js';

const MODEL = join(process.cwd(), 'fixtures/models/llama-tiny');

let stdout: string[];
beforeEach(() => {
  stdout = captureStdout();
});
afterEach(() => jest.restoreAllMocks());

/** Runs a command with `lines` on stdin and returns the parsed output lines. */
async function runCommand<T>(command: string, model: string, lines: string[], args: string[]): Promise<T[]> {
  jest.spyOn(process, 'stdin', 'get').mockReturnValue(Readable.from(lines.map((line) => line + '\n')) as unknown as typeof process.stdin);
  stdout.length = 0;
  await main([command, '--model', model, ...args]);
  return stdout
    .join('')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as T);
}

const run = (lines: string[], ...args: string[]) => runCommand<{ logprobs: number[] }>('logprobs', MODEL, lines, args);

test('prints the log-prob of every token after the first, per line, matching transformers', async () => {
  const ref = JSON.parse(await readFile(join(MODEL, 'reference.json'), 'utf8')) as { input_ids: number[][]; logprobs: number[][] };
  const full = ref.input_ids[0];
  const right = ref.input_ids[1].slice(0, 8);
  // Batches of 2 pad the second line against the first; padding must not change anything.
  const out = await run(
    [JSON.stringify({ input_ids: full }), '', JSON.stringify({ input_ids: right, id: 'extra fields pass' }), '{"input_ids":[7]}'],
    '--batch-size',
    '2',
  );
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

test('log-probs that are not finite (an overflow in float16) fail naming the line instead of printing null', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-overflow-'));
  try {
    await cp(MODEL, dir, { recursive: true });
    // Weights ×300: finite in float16, but the activations overflow it.
    await tidy(async () => {
      for (const file of (await readdir(dir)).filter((f) => f.endsWith('.safetensors'))) {
        const { tensors, metadata } = await readSafetensors(join(dir, file));
        const scaled = new Map([...tensors].map(([name, t]) => [name, name.includes('norm') ? t : t.mul(300)]));
        await writeSafetensors(join(dir, file), scaled, metadata);
      }
    });
    await expect(runCommand('logprobs', dir, ['{"input_ids": [1, 5, 9, 3, 7, 2, 11, 4]}'], ['--dtype', 'float16'])).rejects.toThrow(
      /stdin:1: the log-probs are not finite/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unknown dtype is refused by the argument parser', async () => {
  await expect(run([], '--dtype', 'int8')).rejects.toThrow(/dtype/);
});

describe('prefix-rl generate', () => {
  const QWEN3 = join(process.cwd(), 'fixtures/models/qwen3-tiny');
  interface Output {
    tokens: number[];
    logprobs: number[];
    finish_reason: string;
    text: string;
    top_tokens?: number[][];
  }
  const generate = (lines: string[], ...args: string[]) => runCommand<Output>('generate', QWEN3, lines, args);

  test('greedy continuations of token ids match transformers, with text from the tokenizer', async () => {
    const { greedy } = JSON.parse(await readFile(join(QWEN3, 'reference.json'), 'utf8')) as { greedy: { prompts: number[][]; tokens: number[][] } };
    const out = await generate(
      greedy.prompts.map((ids) => JSON.stringify({ input_ids: ids })),
      '--temperature',
      '0',
      '--max-new-tokens',
      '8',
      '--batch-size',
      '2',
    );
    expect(out.map((line) => line.tokens)).toEqual(greedy.tokens);
    expect(out[0]).toMatchObject({ finish_reason: 'length', text: expect.any(String) });
    expect(out[0].logprobs).toHaveLength(8);
  });

  test('prompts and chats go through the tokenizer; the same seed gives the same lines', async () => {
    const lines = [JSON.stringify({ prompt: '12+3' }), JSON.stringify({ messages: [{ role: 'user', content: '7*6' }] })];
    const first = await generate(lines, '--seed', '4', '--max-new-tokens', '5', '--top-logprobs', '2');
    expect(first).toHaveLength(2);
    expect(first[1].top_tokens).toHaveLength(first[1].tokens.length);
    expect(await generate(lines, '--seed', '4', '--max-new-tokens', '5', '--top-logprobs', '2')).toEqual(first);
  });

  test('--eos-token-id and --stop end rows at the given tokens', async () => {
    const lines = [JSON.stringify({ prompt: '12+3' })];
    const greedy = (...args: string[]) => generate(lines, '--temperature', '0', '--max-new-tokens', '8', ...args).then(([line]) => line);
    const free = await greedy();
    // The task tokenizer has one token per character, so text offsets are token offsets.
    const last = free.tokens.at(-1)!;
    const byEos = await greedy('--eos-token-id', String(last), '--eos-token-id', '0');
    expect(byEos).toMatchObject({ finish_reason: 'eos', tokens: free.tokens.slice(0, free.tokens.indexOf(last) + 1) });
    const stopText = free.text.slice(1, 3);
    const byStop = await greedy('--stop', stopText);
    expect(byStop).toMatchObject({ finish_reason: 'stop', text: free.text.slice(0, free.text.indexOf(stopText) + stopText.length) });
    await expect(generate(lines, '--eos-token-id', '-1')).rejects.toThrow(/--eos-token-id takes token ids/);
  });

  test('a line with two kinds of prompt fails naming the line', async () => {
    await expect(generate(['{"input_ids": [1], "prompt": "1"}'])).rejects.toThrow(/stdin:1: give exactly one of input_ids, prompt or messages/);
  });
});
