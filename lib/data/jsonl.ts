// JSON Lines: one JSON value per line, read as a stream so large files never sit in memory whole.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { fsyncPath, tempSibling } from '../util/fs.js';
import { once } from 'node:events';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { DataError } from './errors.js';

/** One unvalidated row from a reader: `row` is the 1-based line (JSONL) or the 0-based row index (Parquet). */
export interface RawRow {
  row: number;
  value: unknown;
}

/** Yields each non-blank line parsed as JSON; blank lines are skipped but still counted. */
export async function* readJsonlRows(file: string): AsyncGenerator<RawRow> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of lines) {
      line += 1;
      // A byte-order mark before the first line (files saved by some editors) is not part of the JSON.
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new DataError(file, line, `malformed JSON: ${(err as Error).message}`);
      }
      yield { row: line, value };
    }
  } finally {
    lines.close();
  }
}

/**
 * Writes one JSON value per line, creating the parent folder. Honors stream backpressure. The file is written aside
 * and renamed into place when complete: a reader (or a crash) never sees it half-written.
 */
export async function writeJsonl(file: string, rows: Iterable<unknown> | AsyncIterable<unknown>): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temp = tempSibling(file);
  const out = createWriteStream(temp, { encoding: 'utf8' });
  const closed = once(out, 'close');
  let complete = false;
  try {
    for await (const row of rows) {
      if (!out.write(JSON.stringify(row) + '\n')) await once(out, 'drain');
    }
    complete = true;
  } finally {
    out.end();
    await closed;
    if (!complete) await rm(temp, { force: true });
  }
  fsyncPath(temp);
  await rename(temp, file);
  fsyncPath(dirname(file));
}
