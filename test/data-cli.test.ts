import { jest } from '@jest/globals';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { DataError, loadDataset } from '../lib/data/index.js';
import { parsePrompt, problemAnswer } from '../lib/task/index.js';

let tmp: string;
let stdout: string[];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  stdout = [];
  jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout.push(String(chunk));
    return true;
  });
});
afterEach(() => jest.restoreAllMocks());

const makeTask = (out: string, ...extra: string[]) =>
  main(['data', 'make-task', '--out', out, '--n-sft', '40', '--n-rl', '30', '--n-test', '12', '--n-processbench', '24', ...extra]);

describe('prefix-rl data make-task', () => {
  test('writes every file in its public schema', async () => {
    const out = join(tmp, 'task');
    await makeTask(out, '--seed', '3', '--max-depth', '4');
    expect((await readdir(out)).sort()).toEqual([
      'processbench-indist.jsonl',
      'processbench.jsonl',
      'rl-test.jsonl',
      'rl.jsonl',
      'rl.parquet',
      'sft.jsonl',
      'task.json',
      'tokenizer',
    ]);
    expect(stdout.join('')).toContain(`${join(out, 'rl.parquet')}  30 rows`);

    const sft = await loadDataset('sft', join(out, 'sft.jsonl'));
    expect(sft).toHaveLength(40);
    const rl = await loadDataset('rl', join(out, 'rl.jsonl'));
    expect(await loadDataset('rl', join(out, 'rl.parquet'))).toEqual(rl);
    for (const row of rl) {
      const problem = parsePrompt(row.prompt[0].content);
      expect(problem.operations.length).toBeLessThanOrEqual(4);
      expect(row.reward_model.ground_truth).toBe(String(problemAnswer(problem)));
    }
    const test = await loadDataset('rl', join(out, 'rl-test.jsonl'));
    expect(test).toHaveLength(12);
    expect(test.every((row) => row.extra_info?.split === 'test')).toBe(true);
    // Held out: no test prompt is an RL training prompt.
    const train = new Set(rl.map((row) => row.prompt[0].content));
    expect(test.filter((row) => train.has(row.prompt[0].content)).length).toBeLessThan(2);
    const shifted = await loadDataset('processbench', join(out, 'processbench.jsonl'));
    const indist = await loadDataset('processbench', join(out, 'processbench-indist.jsonl'));
    expect(shifted.map((row) => row.trace_format)).toEqual(new Array(24).fill('B1'));
    expect(indist.map((row) => row.label)).toEqual(shifted.map((row) => row.label));
    expect(indist[0].steps.at(-1)).toMatch(/\nAnswer: \\boxed\{\d+\}$/);
    expect((await readdir(join(out, 'tokenizer'))).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']);
    expect(JSON.parse(await readFile(join(out, 'task.json'), 'utf8'))).toMatchObject({ seed: 3, task: { minDepth: 2, maxDepth: 4 } });
  });

  test('the same seed writes the same bytes; another seed differs', async () => {
    const files = ['sft.jsonl', 'rl.jsonl', 'rl.parquet', 'processbench.jsonl', 'processbench-indist.jsonl'];
    const read = (dir: string) => Promise.all(files.map((name) => readFile(join(tmp, dir, name))));
    await makeTask(join(tmp, 'a'), '--seed', '9');
    await makeTask(join(tmp, 'b'), '--seed', '9');
    await makeTask(join(tmp, 'c'), '--seed', '10');
    const [a, b, c] = await Promise.all([read('a'), read('b'), read('c')]);
    expect(b).toEqual(a);
    a.forEach((bytes, i) => expect(c[i].equals(bytes)).toBe(false));
  });

  test('format, SFT style and bad options', async () => {
    const out = join(tmp, 'words');
    await makeTask(out, '--format', 'B2', '--sft-style', 'actions');
    const [first] = await loadDataset('processbench', join(out, 'processbench.jsonl'));
    expect(first.steps[0]).toMatch(/^First, \d+ (plus|minus|times) \d+ gives \d+\.$/);
    const [sft] = await loadDataset('sft', join(out, 'sft.jsonl'));
    expect(sft.messages[1].content).toMatch(/^\(ASSESS\)/);
    await expect(makeTask(join(tmp, 'x'), '--format', 'C')).rejects.toThrow(/Invalid values/);
    await expect(makeTask(join(tmp, 'x'), '--min-depth', '5', '--max-depth', '3')).rejects.toThrow(/depth range/);
    await expect(main(['data', 'make-task'])).rejects.toThrow(/out/);
  });
});

describe('prefix-rl data validate', () => {
  test('prints the row count', async () => {
    await main(['data', 'validate', '--kind', 'rl', 'fixtures/data/eurus2-rl.parquet']);
    expect(stdout.join('')).toBe('fixtures/data/eurus2-rl.parquet: 3 valid rl rows (parquet)\n');
  });

  test('fails with the first bad row', async () => {
    const run = main(['data', 'validate', '--kind', 'processbench', 'fixtures/data/malformed/label-out-of-range.jsonl']);
    await expect(run).rejects.toThrow(DataError);
    await expect(run).rejects.toThrow('fixtures/data/malformed/label-out-of-range.jsonl:2: field "label"');
  });

  test('data needs a known subcommand', async () => {
    await expect(main(['data'])).rejects.toThrow(/make-task or validate/);
    await expect(main(['data', 'frobnicate'])).rejects.toThrow(/Unknown argument: frobnicate/);
  });

  test('rejects an unknown kind', async () => {
    await expect(main(['data', 'validate', '--kind', 'nope', 'x.jsonl'])).rejects.toThrow(/Invalid values/);
  });
});

describe("every command's flags are checked before it runs", () => {
  test.each([
    [['accuracy', '--model', 'm', '--data', 'd', '--batch-size', '0'], /--batch-size must be a positive integer, got 0/],
    [['accuracy', '--model', 'm', '--data', 'd', '--batch-size', 'abc'], /--batch-size must be a finite number/],
    [['rollout', '--model', 'm', '--data', 'd', '--out', 'o', '--samples', '0'], /--samples must be a positive integer, got 0/],
    [['eval', '--model', 'm', '--data', 'd', '--limit', '0'], /--limit must be a positive integer, got 0/],
    [['logprobs', '--model', 'm', '--batch-size', '0'], /--batch-size must be a positive integer, got 0/],
    [['rm', 'eval', '--rm', 'm', '--reference', 'm', '--processbench', 'p', '--coef', '0'], /--coef must be a positive number, got 0/],
    [['rm', 'eval', '--rm', 'm', '--reference', 'm', '--processbench', 'p', '--num-thresholds', '1'], /--num-thresholds must be an integer >= 2/],
    [['data', 'make-task', '--out', 'o', '--seed', 'abc'], /--seed must be a finite number/],
    [['launch', '--nproc', '2', '--grace', '-1', '--', 'sft'], /--grace must be a number of seconds >= 0, got -1/],
    [['verify', '--kind', 'math', '--kind', 'code', '--response', '1', '--ground-truth', '1'], /--kind was given 2 times; it takes one value/],
    [['report', 'r', '--out', 'a.html', '--title', 'x', '--title', 'y'], /--title was given 2 times; it takes one value/],
  ])('%j is refused, the flag named', async (argv, message) => {
    await expect(main(argv)).rejects.toThrow(message);
    expect(stdout.join('')).toBe('');
  });
});
