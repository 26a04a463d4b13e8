export { launchEnv, launchVariables, type LaunchEnv } from './env.js';
export type { DistributedBackend } from '../native/addon.js';
export {
  defaultBackend,
  initProcessGroup,
  shareOf,
  SINGLE_PROCESS,
  type GradientReducer,
  type JoinOptions,
  type ProcessGroup,
  type ReduceOp,
} from './group.js';
