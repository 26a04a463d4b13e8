// The CUDA parity cases (test/cuda/cases.ts) under jest: run where CUDA is present, one visibly skipped test where
// it is not. On a GPU machine without jest, benchmarks/gpu/run.sh runs the same cases under node's test runner.
import { PARITY_CASES, PARITY_DEVICE, paritySkipReason } from './cuda/cases.js';

const skip = paritySkipReason();

describe(`${PARITY_DEVICE} against cpu`, () => {
  if (skip) {
    test.skip(`CUDA parity cases (skipped: ${skip})`, () => undefined);
    return;
  }
  for (const parity of PARITY_CASES) test(parity.name, parity.run, 300_000);
});
