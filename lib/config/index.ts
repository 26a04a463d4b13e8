// prefix-rl/config: experiment configs (zod schemas, presets, YAML loading, overrides).
export * from './rl.js';
export * from './common.js';
export * from './sft.js';
export * from './rm.js';
