// Runtime facts and settings of the native core, for `prefix-rl env` and for library users.
import { addon, type BuildInfo, type RuntimeInfo } from './addon.js';

export interface EnvironmentReport {
  node: string;
  platform: string;
  build: BuildInfo;
  runtime: RuntimeInfo;
}

export function environmentReport(): EnvironmentReport {
  const native = addon();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    build: native.buildInfo(),
    runtime: native.runtimeInfo(),
  };
}

/** Sets the intra-op thread count of the compute thread and the JS thread. */
export function setNumThreads(threads: number): void {
  addon().setNumThreads(threads);
}
