// prefix-rl/util: small shared pieces.
export * from './rng.js';
export * from './registry.js';
export * from './fs.js';
export * from './failpoint.js';
export * from './package.js';
export * from './json.js';
export * from './worker.js';
