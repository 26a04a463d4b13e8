// prefix-rl/run: the run layer — run folders, checkpoints and resume, metrics, progress — and the three training
// stages (SFT, offline RM, RL) run through it.
export * from './layout.js';
export * from './metrics.js';
export { RunFolder, readMetrics, diffKeys, type OpenRunOptions, type ResumePoint } from './folder.js';
export { saveCheckpoint, latestCheckpoint, readCheckpoint, restoreSession, checkpointModel, type CheckpointState } from './checkpoint.js';
export { batchProgress, createProgress, type Progress, type ProgressOptions } from './progress.js';
export { runLoop, type RunLoopOptions } from './runner.js';
export type { RunOutputOptions } from './stage.js';
export { runSft, type RunSftOptions } from './sft.js';
export { runRm, type RunRmOptions } from './rm.js';
export { runRl, rlSummary, type RunRlOptions, type RlRunFiles } from './rl.js';
