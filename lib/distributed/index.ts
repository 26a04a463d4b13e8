export { launchEnv, type LaunchEnv } from './env.js';
export { initProcessGroup, shareOf, SINGLE_PROCESS, type GradientReducer, type JoinOptions, type ProcessGroup, type ReduceOp } from './group.js';
