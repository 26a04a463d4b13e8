// The run folder: what `sft`, `rm train` and `rl train` write, and what `--resume` and `prefix-rl report` read.
//   run.json        the stage, its resolved config and inputs (written once, before the first step)
//   metrics.jsonl   one JSON object per step (names: metrics.ts); step 0 holds what is measured before training
//   checkpoints/    step-NNNNNN/ folders, each complete (written aside, then renamed), and `latest` naming the newest
//   summary.json    the final results, written last: its presence marks a finished run
//   model/ | policy/, reward-model/   the trained checkpoints in Hugging Face format
//   .writer         while a command writes the folder: who holds it (writer-claim.ts)
export const RUN_FILE = 'run.json';
export const WRITER_FILE = '.writer';
export const METRICS_FILE = 'metrics.jsonl';
export const SUMMARY_FILE = 'summary.json';
export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
/** The JSON `rm eval` writes; the report reads it from a run folder (or beside one) when present. */
export const RM_EVAL_FILE = 'rm-eval.json';

export const STAGES = ['sft', 'rm', 'rl'] as const;
export type Stage = (typeof STAGES)[number];

/** run.json. */
export interface RunInfo {
  stage: Stage;
  /** The resolved config of the stage (every default filled in). */
  config: Record<string, unknown>;
  /** Input paths by role (data, model, ...), absolute. */
  inputs: Record<string, string>;
  createdAt: string;
  version: string;
}

/** One line of metrics.jsonl: `step` (1-based count of steps done, 0 before training) and named numbers. */
export type MetricsRow = { step: number } & Record<string, number>;
