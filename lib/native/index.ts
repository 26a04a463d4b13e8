// prefix-rl/native: build and runtime facts, thread and buffer-cache settings (the raw addon stays private).
export * from './runtime.js';
export type { BuildInfo, RuntimeInfo } from './addon.js';
export { findLibtorch, LIBTORCH_HOW_TO, type Libtorch, type LibtorchVariant } from './libtorch.js';
export { chooseAddon, prebuilts, type AddonChoice, type PrebuiltInfo } from './loader.js';
