// Training commands in a data-parallel job: the launcher's environment (torchrun, `prefix-rl launch`) names this
// process's rank; the command joins the job's process group, binds its GPU, runs, and only rank 0 prints.
import { defaultBackend, initProcessGroup, launchEnv, type ProcessGroup } from '../distributed/index.js';
import type { DistributedBackend } from '../native/addon.js';
import { cudaSetDevice } from '../tensor/index.js';
import { printSummary } from './run-flags.js';

/** PREFIX_RL_DIST_TIMEOUT: seconds a collective waits for the other ranks (default 1800; `launch --timeout`). */
export const TIMEOUT_VARIABLE = 'PREFIX_RL_DIST_TIMEOUT';
/** PREFIX_RL_DIST_BACKEND: gloo or nccl (default: nccl for CUDA ranks when the addon has it, else gloo). */
export const BACKEND_VARIABLE = 'PREFIX_RL_DIST_BACKEND';

/**
 * Runs a training command alone, or as one rank of the job the environment describes (see launchEnv): `device`
 * cuda (no index) becomes cuda:LOCAL_RANK; rank 0 prints the summary.
 */
export async function runLaunched(device: string, run: (group?: ProcessGroup) => Promise<Record<string, unknown>>): Promise<void> {
  const env = launchEnv();
  if (!env) return printSummary(await run());
  const timeout = process.env[TIMEOUT_VARIABLE];
  const timeoutSeconds = timeout === undefined ? undefined : Number(timeout);
  if (timeoutSeconds !== undefined && !(timeoutSeconds > 0)) throw new Error(`${TIMEOUT_VARIABLE}=${timeout} must be a number of seconds > 0`);
  const backend = process.env[BACKEND_VARIABLE] ?? defaultBackend(device);
  if (backend !== 'gloo' && backend !== 'nccl') throw new Error(`${BACKEND_VARIABLE}=${backend} must be gloo or nccl`);
  // A CUDA rank binds its GPU, which NCCL's communicator is bound to in the join: cuda (no index) is cuda:LOCAL_RANK,
  // cuda:N is N.
  if (device.startsWith('cuda')) await cudaSetDevice(device === 'cuda' ? env.localRank : Number(device.slice('cuda:'.length)));
  const group = await initProcessGroup(env, { timeoutSeconds, backend: backend as DistributedBackend });
  try {
    const summary = await run(group);
    if (group.rank === 0) printSummary(summary);
  } finally {
    await group.close();
  }
}
