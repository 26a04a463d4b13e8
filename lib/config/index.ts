// prefix-rl/config: experiment configs (zod schemas, presets, YAML loading, overrides).
export * from './rl.js';
