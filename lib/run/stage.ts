// What the stage runners (sft.ts, rm.ts, rl.ts) share: the output options, the answer for a finished run, and the
// course of a one-model stage (SFT, offline RM) once its inputs are loaded.
import type { TrainingSession } from '../train/common.js';
import { restoreSession } from './checkpoint.js';
import type { RunFolder } from './folder.js';
import type { MetricsRow } from './layout.js';
import { runLoop, type RunLoopOptions } from './runner.js';

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

/**
 * Restores the session when resuming, starts writing (`begin`), runs the loop, writes the trained model to
 * <out>/model and then summary.json; closes the session however it ends. The session trains one model, `model`.
 */
export async function runOneModelStage<R>(
  folder: RunFolder,
  config: { checkpoint: { every: number; keep: number } },
  session: TrainingSession<R>,
  loop: Omit<RunLoopOptions<R>, 'folder' | 'session' | 'checkpoint'>,
  summarize: (rows: MetricsRow[], stoppedEarly: boolean) => Record<string, unknown>,
): Promise<Record<string, unknown>> {
  try {
    const resume = folder.resumeFrom;
    if (resume) await restoreSession(session, resume.dir, resume.state);
    await folder.begin(config);
    const { stoppedEarly } = await runLoop({ ...loop, folder, session, checkpoint: config.checkpoint });
    await session.trainees.model.model.save(folder.path('model'));
    const summary = { model: folder.path('model'), ...summarize(await folder.metrics(), stoppedEarly) };
    await folder.finish(summary);
    return summary;
  } finally {
    await session.close();
  }
}
