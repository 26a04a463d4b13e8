import { VerifierPool, type VerifyRequest } from '../lib/verify/index.js';

// (10^{100})! sends the Compute Engine into an endless big-number computation: a real hang.
const HANGING: VerifyRequest = { kind: 'math', response: 'So \\boxed{(10^{100})!}', groundTruth: '5' };
const PASSING: VerifyRequest = { kind: 'math', response: 'So \\boxed{\\frac{\\sqrt{3}}{2}}', groundTruth: '\\sqrt{3}/2' };

let pool: VerifierPool;
beforeAll(() => {
  pool = new VerifierPool({ workers: 2, timeoutMs: 2_000 });
});
afterAll(() => pool.close());

describe('VerifierPool', () => {
  test('judges every kind in worker threads and returns results in request order', async () => {
    const results = await pool.verifyMany([
      PASSING,
      { kind: 'controlled', response: 'Answer: \\boxed{36}', groundTruth: '36' },
      { kind: 'controlled', response: 'Answer: \\boxed{35}', groundTruth: '36' },
      { kind: 'code', response: '```python\nprint(sum(map(int, input().split())))\n```', tests: { stdio: [{ input: '2 3', output: '5' }] } },
      { kind: 'math', response: '\\boxed{3.14}', groundTruth: '\\pi' },
    ]);
    expect(results.map((result) => result.status)).toEqual(['pass', 'pass', 'fail', 'pass', 'fail']);
    expect(results[1]).toEqual({ status: 'pass', extracted: '36' });
  });

  test('a hanging verification times out, its worker is replaced, and the caller keeps running', async () => {
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 50);
    const started = Date.now();
    const result = await pool.verify(HANGING);
    const elapsed = Date.now() - started;
    clearInterval(ticker);
    expect(result).toMatchObject({ status: 'timeout', extracted: null });
    expect(result.detail).toContain('2000 ms');
    // The worker's timer and this clock may round apart by a millisecond.
    expect(elapsed).toBeGreaterThanOrEqual(1_990);
    expect(elapsed).toBeLessThan(60_000); // includes a fresh worker's start-up when this is its first item
    expect(ticks).toBeGreaterThanOrEqual(20);
    expect((await pool.verify(PASSING)).status).toBe('pass');
  });

  test('timeouts in a batch do not disturb the other items', async () => {
    const requests = [PASSING, HANGING, PASSING, HANGING, PASSING, PASSING];
    const results = await pool.verifyMany(requests);
    expect(results.map((result) => result.status)).toEqual(['pass', 'timeout', 'pass', 'timeout', 'pass', 'pass']);
  });

  test('a verifier that throws gives an error result', async () => {
    const result = await pool.verify({ kind: 'math', response: 42 as unknown as string, groundTruth: '5' });
    expect(result.status).toBe('error');
    expect(result.detail).toMatch(/^verifier failed: /);
  });

  test('incomplete requests give error results', async () => {
    const results = await pool.verifyMany([
      { kind: 'math', response: '\\boxed{1}' },
      { kind: 'code', response: 'print(1)' },
      { kind: 'proof', response: 'qed' } as unknown as VerifyRequest,
    ]);
    expect(results.map((result) => [result.status, result.detail])).toEqual([
      ['error', 'a math request needs groundTruth'],
      ['error', 'a code request needs tests'],
      ['error', 'unknown verification kind "proof"'],
    ]);
  });

  test('closing resolves waiting items as errors, and later calls too', async () => {
    const small = new VerifierPool({ workers: 1, timeoutMs: 5_000 });
    const running = small.verify(HANGING);
    const queued = small.verify(PASSING);
    await small.close();
    expect((await running).status).toBe('error');
    expect((await queued).detail).toBe('the verifier pool was closed');
    expect((await small.verify(PASSING)).detail).toBe('the verifier pool is closed');
  });

  test('rejects nonsensical options', () => {
    expect(() => new VerifierPool({ workers: 0 })).toThrow(RangeError);
    expect(() => new VerifierPool({ timeoutMs: -1 })).toThrow(RangeError);
  });
});
