// prefix-rl public API. See docs/API.md.
export * from './tensor/index.js';
export { environmentReport, releaseBufferCache, setBufferCacheLimit, setNumThreads, type EnvironmentReport } from './native/runtime.js';
export type { BuildInfo, RuntimeInfo } from './native/addon.js';
export * from './ops/objectives.js';
export * from './data/index.js';
export * from './task/index.js';
export * from './model/index.js';
export * from './tokenizer/index.js';
export * from './verify/index.js';
export * from './rl/advantages/index.js';
export * from './rl/masked.js';
export * from './eval/index.js';
export * from './train/sft.js';
export * from './rl/rollouts.js';
export * from './rm/train.js';
export * from './train/common.js';
