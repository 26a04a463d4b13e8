// The loop every training stage runs inside its run folder: one session step, its metrics row, the progress line,
// a checkpoint every `checkpoint.every` steps and one at the end (by the process that writes the folder: rank 0).
import { timeIsUp, type TrainingSession } from '../train/common.js';
import { failpoint } from '../util/failpoint.js';
import { saveCheckpoint } from './checkpoint.js';
import type { RunFolder } from './folder.js';
import type { MetricsRow, Stage } from './layout.js';
import type { Progress } from './progress.js';

export interface RunLoopOptions<R> {
  stage: Stage;
  folder: RunFolder;
  session: TrainingSession<R>;
  checkpoint: { every: number; keep: number };
  /** The metrics row of a step record; `seconds` is the step's wall time. */
  metrics: (record: R, seconds: number) => MetricsRow;
  progress: Progress;
  /** Key metrics shown beside the progress bar. */
  show: (row: MetricsRow) => Record<string, number | undefined>;
  /** Stop after this many minutes (the run then ends as if finished). */
  maxMinutes?: number;
}

/** Runs the session from where it stands to its end; resolves to whether a time limit stopped it early. */
export async function runLoop<R>(options: RunLoopOptions<R>): Promise<{ stoppedEarly: boolean }> {
  const { session, folder, progress, checkpoint } = options;
  const start = performance.now();
  let checkpointed = session.stepsDone;
  let stoppedEarly = false;
  try {
    progress.update(session.stepsDone);
    while (session.stepsDone < session.totalSteps) {
      if (await timeIsUp(session, start, options.maxMinutes)) {
        stoppedEarly = true;
        break;
      }
      const stepStart = performance.now();
      const record = await session.next();
      const row = options.metrics(record, (performance.now() - stepStart) / 1000);
      await folder.log(row);
      progress.update(session.stepsDone, options.show(row));
      failpoint('step', session.stepsDone);
      if (folder.writes && checkpoint.every > 0 && session.stepsDone % checkpoint.every === 0) {
        await saveCheckpoint(folder.dir, options.stage, session, checkpoint.keep);
        checkpointed = session.stepsDone;
      }
    }
  } finally {
    progress.stop();
  }
  if (folder.writes && checkpointed !== session.stepsDone) await saveCheckpoint(folder.dir, options.stage, session, checkpoint.keep);
  return { stoppedEarly };
}
