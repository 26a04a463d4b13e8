// What the stage runners (sft.ts, rm.ts, rl.ts) share: the output options and the answer for a finished run.
import type { RunFolder } from './folder.js';

export interface RunOutputOptions {
  /** The run folder. */
  out: string;
  /** 'auto' (the latest checkpoint, or a fresh start when there is none) or a checkpoint folder of the run. */
  resume?: string;
  /** Replace what `out` holds. */
  overwrite?: boolean;
  /** Plain progress lines even on a terminal. */
  quiet?: boolean;
  /** Plain progress: a line every N steps. */
  logEvery?: number;
  signal?: AbortSignal;
}

/** A resumed run that had already finished: its summary, and a note that nothing was trained. */
export function finishedRun(folder: RunFolder): Record<string, unknown> {
  process.stderr.write(`${folder.dir} is a finished run (summary.json); nothing to resume\n`);
  return folder.finished!;
}
