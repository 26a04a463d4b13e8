import { jest } from '@jest/globals';
import { Readable } from 'node:stream';
import { verifyJsonLines } from '../lib/cli/commands/verify.js';
import { main } from '../lib/cli/main.js';
import { VerifierPool, type VerifyResult } from '../lib/verify/index.js';
import { captureStdout } from './helpers/stdout.js';

const parseLines = (text: string): VerifyResult[] =>
  text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as VerifyResult);

describe('prefix-rl verify --response', () => {
  let stdout: string[];
  beforeEach(() => {
    stdout = captureStdout();
  });
  afterEach(() => jest.restoreAllMocks());

  test('math: prints one JSON result', async () => {
    await main(['verify', '--kind', 'math', '--response', 'Thus $\\boxed{\\dfrac{1}{2}}$.', '--ground-truth', '0.5', '--workers', '1']);
    expect(parseLines(stdout.join(''))).toEqual([{ status: 'pass', extracted: '\\dfrac{1}{2}' }]);
  });

  test('code: tests come from --tests', async () => {
    const tests = JSON.stringify({ stdio: [{ input: '4', output: '16' }] });
    const response = '```python\nn = int(input())\nprint(n * n)\n```';
    await main(['verify', '--kind', 'code', '--response', response, '--tests', tests, '--workers', '1', '--time-limit-ms', '3000']);
    expect(parseLines(stdout.join(''))).toEqual([
      expect.objectContaining({ status: 'pass', code: expect.objectContaining({ passed: 1, total: 1 }) }),
    ]);
  });

  test('an unknown kind is a usage error', async () => {
    await expect(main(['verify', '--kind', 'poetry', '--response', 'x'])).rejects.toThrow(/kind/);
  });
});

describe('prefix-rl verify on JSON lines', () => {
  let pool: VerifierPool;
  beforeAll(() => {
    pool = new VerifierPool({ workers: 2, timeoutMs: 5_000 });
  });
  afterAll(() => pool.close());

  async function run(kind: 'math' | 'code' | 'controlled', lines: string[]): Promise<VerifyResult[]> {
    const out: string[] = [];
    await verifyJsonLines(Readable.from([lines.join('\n') + '\n']), kind, pool, (text) => out.push(text));
    return parseLines(out.join(''));
  }

  test('one result per line, in input order; bad lines get error results', async () => {
    const results = await run('math', [
      JSON.stringify({ response: '\\boxed{2}', ground_truth: '2' }),
      '{"response": "\\\\boxed{3}", ',
      JSON.stringify({ response: '\\boxed{x^2-1}', ground_truth: '(x-1)(x+1)' }),
      JSON.stringify({ ground_truth: '2' }),
      '',
      JSON.stringify({ response: 'The answer is 7.', ground_truth: '8' }),
      JSON.stringify({ response: '\\boxed{1}' }),
    ]);
    expect(results.map((result) => result.status)).toEqual(['pass', 'error', 'pass', 'error', 'error', 'fail', 'error']);
    expect(results[1].detail).toMatch(/^line 2: not JSON/);
    expect(results[3].detail).toMatch(/^line 4: .*response/s);
    expect(results[4].detail).toMatch(/^line 5: not JSON/);
    expect(results[6].detail).toBe('a math request needs groundTruth');
  });

  test('a line over the length bound gets an error result; the lines after it are still judged', async () => {
    const out: string[] = [];
    const lines = [JSON.stringify({ response: 'x'.repeat(100), ground_truth: '2' }), JSON.stringify({ response: '\\boxed{2}', ground_truth: '2' })];
    await verifyJsonLines(Readable.from([lines.join('\n') + '\n']), 'math', pool, (text) => out.push(text), 50);
    const results = parseLines(out.join(''));
    expect(results.map((result) => result.status)).toEqual(['error', 'pass']);
    expect(results[0].detail).toBe('line 1: longer than 50 characters, the most a line may hold');
  });

  test('controlled lines', async () => {
    const results = await run('controlled', [
      JSON.stringify({ response: 'Step 1: 3+4=7\nAnswer: \\boxed{7}', ground_truth: '7' }),
      JSON.stringify({ response: 'Step 1: 3+4=8\nAnswer: \\boxed{8}', ground_truth: '7' }),
    ]);
    expect(results.map((result) => result.status)).toEqual(['pass', 'fail']);
  });

  test('code lines take tests, or Eurus-2 style tests JSON in ground_truth', async () => {
    const response = '```python\nprint(input()[::-1])\n```';
    const results = await run('code', [
      JSON.stringify({ response, tests: { stdio: [{ input: 'abc', output: 'cba' }] } }),
      JSON.stringify({ response, ground_truth: JSON.stringify({ inputs: ['xy'], outputs: ['yx'] }) }),
      JSON.stringify({ response, ground_truth: JSON.stringify({ inputs: ['xy'], outputs: ['xy'] }) }),
      JSON.stringify({ response }),
    ]);
    expect(results.map((result) => result.status)).toEqual(['pass', 'pass', 'fail', 'error']);
  });
});
