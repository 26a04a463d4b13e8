// The launcher's environment: what torchrun (and `prefix-rl launch`, and SLURM scripts that set the same names)
// tells each process about its place in the job.

/** One process's place in a data-parallel job. */
export interface LaunchEnv {
  /** Global rank in [0, worldSize). */
  rank: number;
  /** Rank on this node (selects cuda:localRank). */
  localRank: number;
  worldSize: number;
  /** Processes on this node. */
  localWorldSize: number;
  /** Where rank 0 hosts the rendezvous store. */
  masterAddr: string;
  masterPort: number;
}

/**
 * The job this process belongs to, from RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT;
 * undefined when WORLD_SIZE is unset or 1 (a single process). A malformed or missing variable is an error naming it.
 */
export function launchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv | undefined {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE.trim() === '1') return undefined;
  const int = (name: string, min: number, max: number, fallback?: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') {
      if (fallback !== undefined) return fallback;
      throw new Error(`${name} is not set (WORLD_SIZE=${env.WORLD_SIZE}: a distributed launch sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)`);
    }
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name}=${raw} must be an integer in [${min}, ${max}]`);
    return value;
  };
  const worldSize = int('WORLD_SIZE', 1, 1 << 20);
  const rank = int('RANK', 0, worldSize - 1);
  // torchrun and prefix-rl launch set LOCAL_WORLD_SIZE; a script that sets only LOCAL_RANK (many SLURM ones) gets the
  // ranks up to it on this node, at the least.
  const local = env.LOCAL_WORLD_SIZE?.trim() ? undefined : int('LOCAL_RANK', 0, worldSize - 1, 0);
  const localWorldSize = int('LOCAL_WORLD_SIZE', 1, worldSize, (local ?? 0) + 1);
  const localRank = local ?? int('LOCAL_RANK', 0, localWorldSize - 1, 0);
  const masterAddr = env.MASTER_ADDR?.trim();
  if (!masterAddr) throw new Error(`MASTER_ADDR is not set (WORLD_SIZE=${worldSize}): the host of rank 0`);
  return { rank, localRank, worldSize, localWorldSize, masterAddr, masterPort: int('MASTER_PORT', 1, 65535) };
}

/**
 * The variables torchrun sets for one process (launchEnv reads them back): RANK, LOCAL_RANK, WORLD_SIZE,
 * LOCAL_WORLD_SIZE, GROUP_RANK (the node's index), MASTER_ADDR, MASTER_PORT.
 */
export function launchVariables(env: LaunchEnv, nodeRank = 0): Record<string, string> {
  return {
    RANK: String(env.rank),
    LOCAL_RANK: String(env.localRank),
    WORLD_SIZE: String(env.worldSize),
    LOCAL_WORLD_SIZE: String(env.localWorldSize),
    GROUP_RANK: String(nodeRank),
    MASTER_ADDR: env.masterAddr,
    MASTER_PORT: String(env.masterPort),
  };
}
