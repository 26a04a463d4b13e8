// prefix-rl/native: build and runtime facts, thread and buffer-cache settings (the raw addon stays private).
export * from './runtime.js';
export type { BuildInfo, RuntimeInfo } from './addon.js';
