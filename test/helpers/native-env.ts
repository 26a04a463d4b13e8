// Native switches (PREFIX_RL_HEAD_KERNELS, PREFIX_RL_HEAD_RECOMPUTE) are read with getenv from the process's own
// environment. Under jest, process.env is a copy that never reaches it, so a test that only assigned process.env
// would run the default path while claiming another; this sets both.
import { addon } from '../../lib/native/addon.js';

/** Runs `fn` with `vars` set for the addon (and in process.env), then restores what was there. */
export async function withNativeEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const set = (name: string, value: string | undefined) => {
    addon().setEnv(name, value);
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };
  for (const [name, value] of Object.entries(vars)) set(name, value);
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(before)) set(name, value);
  }
}

/**
 * Runs `fn` on each way the fused LM head reduces its vocabulary chunks: the device's own kernels (the CPU row
 * kernels, the CUDA chunk kernels), then ATen ops (PREFIX_RL_HEAD_KERNELS=aten).
 */
export async function onEachHeadPath(fn: (path: 'kernels' | 'aten') => Promise<void>): Promise<void> {
  await fn('kernels');
  await withNativeEnv({ PREFIX_RL_HEAD_KERNELS: 'aten' }, () => fn('aten'));
}
