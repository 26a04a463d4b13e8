// prefix-rl/util: small shared pieces.
export * from './rng.js';
export * from './registry.js';
