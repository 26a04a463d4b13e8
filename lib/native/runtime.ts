// Runtime facts and settings of the native core, for `prefix-rl env` and for library users.
import { addon, addonChoice, type BuildInfo, type RuntimeInfo } from './addon.js';
import type { AddonChoice } from './loader.js';

export interface EnvironmentReport {
  node: string;
  platform: string;
  build: BuildInfo;
  runtime: RuntimeInfo;
  /** The binary loaded and why (a source build, or a prebuilt one with the libtorch it was matched to). */
  addon: AddonChoice;
}

export function environmentReport(): EnvironmentReport {
  const native = addon();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    build: native.buildInfo(),
    runtime: native.runtimeInfo(),
    addon: addonChoice(),
  };
}

/** Sets the intra-op thread count of the compute thread and the JS thread. */
export function setNumThreads(threads: number): void {
  addon().setNumThreads(threads);
}

/**
 * The fused ops allocate their large CPU outputs (the [N, V] logits gradients) from a cache of freed buffers, so that
 * a training loop asking for the same shape every step reuses memory instead of paying a page fault per page. Freed
 * buffers are held up to a limit (default PREFIX_RL_BUFFER_CACHE_MB MiB, else 4096 MiB); this frees them now.
 */
export function releaseBufferCache(): void {
  addon().releaseBufferCache();
}

/** Frees the cached buffers and sets how many bytes of freed buffers the cache may hold (0 turns it off). */
export function setBufferCacheLimit(bytes: number): void {
  addon().setBufferCacheLimit(bytes);
}
