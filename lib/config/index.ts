// prefix-rl/config: experiment configs (zod schemas, YAML loading, overrides).
export * from './rl.js';
