// prefix-rl/ops: the fused objectives' typed API.
export * from './objectives.js';
