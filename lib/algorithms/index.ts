// prefix-rl/algorithms: RL math in float64 TypeScript and the three registries of an RL run — advantage estimators,
// implicit reward models trained online, policy losses — with the masked helpers they share.
export * from './advantages/index.js';
export * from './reward-models/index.js';
export * from './policy-losses/index.js';
export * from './masked.js';
