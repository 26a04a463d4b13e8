// prefix-rl/algorithms: RL math in float64 TypeScript (masked helpers, advantage estimators and their registry).
export * from './advantages/index.js';
export * from './masked.js';
