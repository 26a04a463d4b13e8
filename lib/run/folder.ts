// Opening a run folder safely. `RunFolder.open` only checks — the output is apart from every input, and an
// existing folder is resumed (--resume), replaced (--overwrite) or refused — and writes nothing; `begin` writes,
// once the caller has checked all its inputs, and holds the folder (.writer) until `close`, so that a second command
// on a folder that a live one writes is refused instead of both writing it. metrics.jsonl is appended per step and,
// on resume, cut back to the checkpoint's step, so a resumed run's file is the one an uninterrupted run writes.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { checkOutputApart, removeStaleTemps, writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/package.js';
import { cleanCheckpoints, latestCheckpoint, readCheckpoint, checkpointName, type CheckpointState } from './checkpoint.js';
import {
  CHECKPOINTS_DIR,
  LATEST_FILE,
  METRICS_FILE,
  RUN_FILE,
  SUMMARY_FILE,
  WRITER_FILE,
  type MetricsRow,
  type RunInfo,
  type Stage,
} from './layout.js';
import { WriterClaim } from './writer-claim.js';

export interface OpenRunOptions {
  stage: Stage;
  /** The run folder (--out). */
  out: string;
  /** 'auto': continue from the latest checkpoint (or start, when the folder holds none); or a checkpoint folder of this run. */
  resume?: string;
  /** Replace whatever the folder holds. */
  overwrite?: boolean;
  /** Input paths by flag ('--model': path); none may overlap the output. */
  inputs: Record<string, string | undefined>;
  /**
   * Whether this process writes the folder (default true). In a data-parallel run only rank 0 does: the others
   * read it (to resume) and their begin, log and finish do nothing.
   */
  writer?: boolean;
}

/** What a resumed run continues from. */
export interface ResumePoint {
  dir: string;
  state: CheckpointState;
}

export class RunFolder {
  private claim: WriterClaim | undefined;

  private constructor(
    readonly dir: string,
    private readonly options: OpenRunOptions,
    /** run.json of the run being resumed. */
    private readonly existing: RunInfo | undefined,
    /** The checkpoint a resumed run continues from (undefined: from the start). */
    readonly resumeFrom: ResumePoint | undefined,
    /** A resumed run that had already finished: its summary. */
    readonly finished: Record<string, unknown> | undefined,
    /** What the folder held when opened (folderState). */
    private readonly seen: string,
  ) {}

  /** Whether this process writes the folder (OpenRunOptions.writer). */
  get writes(): boolean {
    return this.options.writer ?? true;
  }

  static async open(options: OpenRunOptions): Promise<RunFolder> {
    const { stage, out, resume, overwrite } = options;
    const dir = resolve(out);
    checkOutputApart('--out', dir, options.inputs);
    const seen = await folderState(dir);
    if (resume !== undefined && overwrite) throw new Error('give --resume or --overwrite, not both');
    // A writer's claim alone (a command killed before its first file) is no content; begin settles who holds it.
    const contents = (existsSync(dir) ? await readdir(dir) : []).filter((entry) => entry !== WRITER_FILE);
    const runFile = join(dir, RUN_FILE);
    if (resume === undefined) {
      if (contents.length > 0 && !overwrite) {
        const what = existsSync(runFile) ? 'another run' : existsSync(join(dir, 'config.json')) ? 'a checkpoint' : 'files';
        throw new Error(`--out ${out} already holds ${what}; pass --resume auto to continue a run there, or --overwrite to replace it`);
      }
      return new RunFolder(dir, options, undefined, undefined, undefined, seen);
    }
    if (!existsSync(runFile)) {
      if (contents.length > 0) throw new Error(`--out ${out} holds files but no run (${RUN_FILE}): nothing to resume`);
      if (resume !== 'auto') throw new Error(`--resume ${resume}: --out ${out} holds no run to resume`);
      return new RunFolder(dir, options, undefined, undefined, undefined, seen);
    }
    let existing: RunInfo;
    try {
      existing = JSON.parse(await readFile(runFile, 'utf8'));
    } catch (err) {
      throw new Error(`${runFile}: ${(err as Error).message}`);
    }
    if (existing.stage !== stage) throw new Error(`--out ${out} holds a ${existing.stage} run; this command trains ${stage}`);
    const summaryFile = join(dir, SUMMARY_FILE);
    if (existsSync(summaryFile)) {
      return new RunFolder(dir, options, existing, undefined, JSON.parse(await readFile(summaryFile, 'utf8')), seen);
    }
    let checkpoint: string | undefined;
    if (resume === 'auto') checkpoint = await latestCheckpoint(dir);
    else {
      checkpoint = resolve(resume);
      const rel = relative(join(dir, CHECKPOINTS_DIR), checkpoint);
      if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.includes(sep)) {
        throw new Error(`--resume ${resume} is not a checkpoint of the run in --out ${out} (${join(out, CHECKPOINTS_DIR, 'step-…')})`);
      }
    }
    const resumeFrom = checkpoint ? { dir: checkpoint, state: await readCheckpoint(checkpoint, stage) } : undefined;
    return new RunFolder(dir, options, existing, resumeFrom, undefined, seen);
  }

  /**
   * Starts writing, after every input was checked: a new run writes run.json (an --overwrite first clears the
   * folder); a resumed one checks that config and inputs are the run's and cuts metrics and checkpoints back to
   * the checkpoint it continues from.
   */
  async begin(resolved: object): Promise<void> {
    if (!this.writes) return;
    await this.hold();
    const config = resolved as Record<string, unknown>;
    // Half-written files of a run that was killed (checkpoints, metrics): never read, so removed.
    await removeStaleTemps(this.dir);
    const inputs = Object.fromEntries(
      Object.entries(this.options.inputs)
        .filter((entry): entry is [string, string] => entry[1] !== undefined)
        .map(([flag, path]) => [flag, resolve(path)]),
    );
    if (this.existing) {
      const differences = [
        ...diffKeys(comparable(this.existing.config), comparable(config)),
        ...diffKeys(this.existing.inputs, inputs).map((k) => `input ${k}`),
      ];
      if (differences.length > 0) {
        throw new Error(
          `${this.dir} was started with another setup (${differences.join(', ')} differ); resume with the run's own config and inputs, or start a new run`,
        );
      }
      const step = this.resumeFrom?.state.step ?? 0;
      await cleanCheckpoints(this.dir, step);
      if (this.resumeFrom) await writeFileAtomic(join(this.dir, CHECKPOINTS_DIR, LATEST_FILE), checkpointName(step) + '\n');
      else await rm(join(this.dir, CHECKPOINTS_DIR, LATEST_FILE), { force: true });
      // Without a checkpoint the run starts over: every row goes, the step-0 measurements included.
      await this.truncateMetrics(this.resumeFrom ? step : -1);
      return;
    }
    if (this.options.overwrite) {
      for (const entry of await readdir(this.dir)) if (entry !== WRITER_FILE) await rm(join(this.dir, entry), { recursive: true, force: true });
    }
    await mkdir(this.dir, { recursive: true });
    const info: RunInfo = { stage: this.options.stage, config, inputs, createdAt: new Date().toISOString(), version: packageVersion() };
    // run.json first: a crash right after it leaves a run that --resume auto starts over.
    await writeFileAtomic(join(this.dir, RUN_FILE), JSON.stringify(info, null, 2) + '\n');
    await writeFileAtomic(join(this.dir, METRICS_FILE), '');
  }

  /** Releases the folder (begin holds it); safe to call however the run ended. */
  async close(): Promise<void> {
    const claim = this.claim;
    this.claim = undefined;
    await claim?.release();
  }

  /** Takes the folder (WriterClaim), then checks that it is still as `open` found it: another command may have written it in between. */
  private async hold(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.claim = await WriterClaim.take(this.dir);
    if (!this.options.overwrite && (await folderState(this.dir)) !== this.seen) {
      await this.close();
      throw new Error(`${this.dir} changed while this command started (another command wrote it); run the command again`);
    }
  }

  /** Appends one step's metrics. */
  async log(row: MetricsRow): Promise<void> {
    if (this.writes) await appendFile(join(this.dir, METRICS_FILE), JSON.stringify(row) + '\n');
  }

  /** Writes summary.json, the mark of a finished run. */
  async finish(summary: Record<string, unknown>): Promise<void> {
    if (this.writes) await writeFileAtomic(join(this.dir, SUMMARY_FILE), JSON.stringify(summary, null, 2) + '\n');
  }

  /** Every metrics row so far (a resumed run's included). */
  async metrics(): Promise<MetricsRow[]> {
    return readMetrics(join(this.dir, METRICS_FILE));
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  /** Keeps the rows of steps ≤ `step`. */
  private async truncateMetrics(step: number): Promise<void> {
    const file = join(this.dir, METRICS_FILE);
    const kept = existsSync(file) ? (await readMetrics(file)).filter((row) => row.step <= step) : [];
    await writeFileAtomic(file, kept.map((row) => JSON.stringify(row) + '\n').join(''));
  }
}

/** What a run folder holds, as far as another command's writes would change it: its run, newest checkpoint, summary. */
async function folderState(dir: string): Promise<string> {
  if (!existsSync(join(dir, RUN_FILE))) return 'no run';
  const latest = await latestCheckpoint(dir).catch((err: Error) => `unreadable (${err.message})`);
  return `${latest ?? 'no checkpoint'}${existsSync(join(dir, SUMMARY_FILE)) ? ', finished' : ''}`;
}

/** The config minus what may change between a run and its resumption (when to checkpoint). */
function comparable(config: Record<string, unknown>): Record<string, unknown> {
  const { checkpoint: _checkpoint, ...rest } = config;
  return rest;
}

/** Dotted keys whose values differ between two JSON values. */
export function diffKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isMap(a) && isMap(b)) {
    return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((key) => diffKeys(a[key], b[key], prefix ? `${prefix}.${key}` : key));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix || '(root)'];
}

/**
 * metrics.jsonl, the one reader (resume and the report): the numbers of each row (other values are skipped), by
 * step (a step logged twice keeps its last values). A malformed last line is dropped (a run still writing it, or
 * killed mid-line); a malformed line before it is an error naming the line.
 */
export function parseMetrics(file: string, text: string): MetricsRow[] {
  const lines = text.split('\n');
  while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
  const bySteps = new Map<number, MetricsRow>();
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      if (i === lines.length - 1) return;
      throw new Error(`${file}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    const record = value as Record<string, unknown> | null;
    if (typeof record !== 'object' || record === null || Array.isArray(record) || typeof record.step !== 'number') {
      throw new Error(`${file}:${i + 1}: a metrics row is an object with a numeric "step"`);
    }
    const step = record.step;
    const row: MetricsRow = bySteps.get(step) ?? { step };
    for (const [name, x] of Object.entries(record)) if (typeof x === 'number' && Number.isFinite(x)) row[name] = x;
    bySteps.set(step, row);
  });
  return [...bySteps.values()].sort((a, b) => a.step - b.step);
}

/** The rows of a metrics.jsonl file (see parseMetrics). */
export async function readMetrics(file: string): Promise<MetricsRow[]> {
  return parseMetrics(file, await readFile(file, 'utf8'));
}
