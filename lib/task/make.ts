// `prefix-rl data make-task`: every file a demo run needs, written from one seed.
import { join } from 'node:path';
import { writeFileAtomic, type PlaceOptions } from '../util/fs.js';
import { writeJsonl } from '../data/jsonl.js';
import { writeParquet } from '../data/parquet.js';
import { makeProcessBenchSets, makeRlRecords, makeSftRecords } from './datasets.js';
import { resolveTaskOptions, type TaskOptions } from './problem.js';
import type { ResponseStyle, TraceFormat } from './render.js';
import { writeTaskTokenizer } from './tokenizer.js';

export interface MakeTaskDataOptions {
  outDir: string;
  seed: number;
  sftCount: number;
  rlCount: number;
  /** Held-out RL prompts (rl-test.jsonl). */
  testCount: number;
  processBenchCount: number;
  task?: Partial<TaskOptions>;
  /** Trace format of processbench.jsonl; processbench-indist.jsonl is always format A. */
  processBenchFormat?: TraceFormat;
  /** Response style of the SFT rows. */
  sftStyle?: ResponseStyle;
  /** Whether existing files are replaced (default true); false: a file another command wrote meanwhile stops the write. */
  replace?: boolean;
}

export interface WrittenFile {
  path: string;
  /** Number of records, for data files. */
  rows?: number;
}

/**
 * Writes sft.jsonl (Eurus-2-SFT schema), rl.jsonl and rl.parquet (Eurus-2-RL schema), rl-test.jsonl (held-out prompts),
 * processbench.jsonl and processbench-indist.jsonl (ProcessBench schema), tokenizer/ and task.json
 * (the resolved settings, to reproduce the run).
 */
export async function writeTaskData(options: MakeTaskDataOptions): Promise<WrittenFile[]> {
  const { outDir, seed, sftCount, rlCount, testCount, processBenchCount } = options;
  for (const [name, count] of Object.entries({ sftCount, rlCount, testCount, processBenchCount })) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`writeTaskData: ${name} must be a positive integer, got ${count}`);
  }
  const task = resolveTaskOptions(options.task);
  const processBenchFormat = options.processBenchFormat ?? 'B1';
  const sftStyle = options.sftStyle ?? 'A';
  const written: WrittenFile[] = [];
  const place: PlaceOptions = { replace: options.replace ?? true };
  const writeRows = async (
    name: string,
    rows: Record<string, unknown>[],
    write: (path: string, rows: Record<string, unknown>[], options: PlaceOptions) => Promise<void> = writeJsonl,
  ) => {
    const path = join(outDir, name);
    await write(path, rows, place);
    written.push({ path, rows: rows.length });
  };

  await writeRows('sft.jsonl', makeSftRecords(seed, sftCount, task, sftStyle));
  const rl = makeRlRecords(seed, rlCount, task);
  await writeRows('rl.jsonl', rl);
  await writeRows('rl.parquet', rl, writeParquet);
  await writeRows('rl-test.jsonl', makeRlRecords(seed, testCount, task, 'test'));
  const processBench = makeProcessBenchSets(seed, processBenchCount, [processBenchFormat, 'A'], task);
  await writeRows('processbench.jsonl', processBench.get(processBenchFormat)!);
  await writeRows('processbench-indist.jsonl', processBench.get('A')!);
  for (const path of await writeTaskTokenizer(join(outDir, 'tokenizer'))) written.push({ path });

  const manifest = join(outDir, 'task.json');
  const settings = { seed, sftCount, rlCount, testCount, processBenchCount, processBenchFormat, sftStyle, task };
  await writeFileAtomic(manifest, JSON.stringify(settings, null, 2) + '\n', place);
  written.push({ path: manifest });
  return written;
}
