// What the stage runners (sft.ts, rm.ts, rl.ts) share: the output options, the answer for a finished run, and the
// course of a one-model stage (SFT, offline RM) once its inputs are loaded.
import { SINGLE_PROCESS, type ProcessGroup } from '../distributed/group.js';
import type { TrainingSession } from '../train/common.js';
import { restoreSession } from './checkpoint.js';
import { diffKeys, RunFolder, type OpenRunOptions } from './folder.js';
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
  /** Data-parallel: the job's ranks (see lib/distributed); rank 0 alone writes the run folder and logs. */
  group?: ProcessGroup;
}

/**
 * Opens the run folder (see RunFolder.open), written by rank 0 only, and checks that every rank was started with
 * the same setup (`setup`: the stage's resolved config) and continues from the same point of the run (every rank
 * reads the folder to resume), naming the keys a rank differs in. Its gather also keeps rank 0 from writing before
 * every rank has opened the folder.
 */
export async function openRunFolder(options: OpenRunOptions, group: ProcessGroup = SINGLE_PROCESS, setup: object): Promise<RunFolder> {
  const folder = await RunFolder.open({ ...options, writer: group.rank === 0 });
  if (group.worldSize > 1) {
    const from = folder.finished ? 'a finished run' : folder.resumeFrom ? `step ${folder.resumeFrom.state.step}` : 'the start';
    const gathered = await group.allGatherObjects({ setup: { stage: options.stage, worldSize: group.worldSize, config: setup }, from });
    const differing = gathered
      .map((other, rank) => ({ rank, keys: diffKeys(gathered[0].setup, other.setup) }))
      .filter(({ keys }) => keys.length > 0)
      .map(({ rank, keys }) => `rank ${rank} differs from rank 0 in ${keys.join(', ')}`);
    if (differing.length > 0)
      throw new Error(`the ranks were started with different setups (${differing.join('; ')}): start every rank with the same command`);
    if (gathered.some((other) => other.from !== from)) {
      const points = gathered.map((other, rank) => `rank ${rank}: ${other.from}`).join(', ');
      throw new Error(
        `the ranks would continue from different points of the run (${points}): --out must be one folder that every rank reads, on storage the nodes share`,
      );
    }
  }
  return folder;
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
    if (!folder.writes) return { out: folder.dir, rank: session.trainees.model.group.rank };
    await session.trainees.model.model.save(folder.path('model'));
    const summary = { model: folder.path('model'), ...summarize(await folder.metrics(), stoppedEarly) };
    await folder.finish(summary);
    return summary;
  } finally {
    await closeRun(session, folder);
  }
}

/** Closes a run however it ended: the session (its models' trainers, verifiers), then the folder's claim. */
export async function closeRun(session: { close(): Promise<void> }, folder: RunFolder): Promise<void> {
  try {
    await session.close();
  } finally {
    await folder.close();
  }
}
