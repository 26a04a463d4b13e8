export { launchEnv, type LaunchEnv } from './env.js';
export { initProcessGroup, shareOf, SINGLE_PROCESS, type JoinOptions, type ProcessGroup, type ReduceOp } from './group.js';
