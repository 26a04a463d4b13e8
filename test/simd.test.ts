// The float32 row kernels in every instruction set this CPU runs (AVX-512, AVX2, portable scalar) give the same
// candidate sets and the same log-probs and gradients up to float rounding. Each set runs in a child process, since
// the choice is made once per process (PREFIX_RL_SIMD caps it).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

interface KernelRun {
  simd: string;
  logprobs: number[];
  grad: number[];
  candidateIndices: number[];
  candidateMask: number[];
  linear: number[];
}

const run = (cap: string): KernelRun =>
  JSON.parse(
    execFileSync(process.execPath, [join(process.cwd(), 'test/fixtures/simd-child.mjs')], {
      env: { ...process.env, PREFIX_RL_SIMD: cap },
      encoding: 'utf8',
    }),
  );

test('AVX-512, AVX2 and scalar row kernels agree', () => {
  const scalar = run('scalar');
  expect(scalar.simd).toBe('scalar');
  const maxAbs = (a: number[], b: number[]) => a.reduce((m, value, i) => Math.max(m, Math.abs(value - b[i])), 0);
  for (const cap of ['avx2', 'avx512']) {
    const vector = run(cap);
    if (vector.simd === 'scalar') continue; // this CPU has neither
    expect(vector.candidateIndices).toEqual(scalar.candidateIndices);
    expect(vector.candidateMask).toEqual(scalar.candidateMask);
    expect(maxAbs(vector.logprobs, scalar.logprobs)).toBeLessThan(1e-5);
    expect(maxAbs(vector.grad, scalar.grad)).toBeLessThan(1e-6);
    expect(maxAbs(vector.linear, scalar.linear)).toBeLessThan(1e-5); // the scalar ISA uses torch's linear
  }
});
