// Entry of the GPU bundle (benchmarks/gpu/run.sh): the CUDA parity cases under node's own test runner, for machines
// that have node but not this package's node_modules.
import { test } from 'node:test';
import { PARITY_CASES, paritySkipReason } from './cases.js';

const skip = paritySkipReason();
for (const parity of PARITY_CASES) test(parity.name, { skip: skip ?? false, timeout: 300_000 }, parity.run);
