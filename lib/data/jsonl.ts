// JSON Lines: one JSON value per line, read as a stream so large files never sit in memory whole.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { fsyncPath, placeFile, tempSibling, type PlaceOptions } from '../util/fs.js';
import { dirname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { pipeline } from 'node:stream/promises';
import { DataError } from './errors.js';

/** One unvalidated row from a reader: `row` is the 1-based line (JSONL) or the 0-based row index (Parquet). */
export interface RawRow {
  row: number;
  value: unknown;
}

/**
 * The longest line the JSON-lines readers take, in characters (UTF-16 code units), unless told otherwise: 64 Mi.
 * Far above any real record, far below V8's string limit (~512 Mi), where reading a line would crash the process.
 */
export const MAX_LINE_LENGTH = 64 * 1024 * 1024;

const LINE_BREAK = /\r\n|\r|\n/g;

/**
 * The lines of a text stream, split where readline splits them (\n, \r\n, a lone \r) but bounded: a line longer than
 * `maxLength` comes as null as soon as it is known to be too long, never as a string; a caller that reads on gets the
 * next line (the rest of the long one is skipped). readline has no bound and throws, uncaught, past V8's string limit.
 */
export async function* readLines(input: AsyncIterable<string | Uint8Array>, maxLength = MAX_LINE_LENGTH): AsyncGenerator<string | null> {
  const decoder = new StringDecoder('utf8');
  let parts: string[] = []; // the current line so far
  let length = 0;
  let skipping = false; // the current line is too long: drop it up to its end
  let afterCR = false; // the last chunk ended in \r: a \n opening the next one ends the same line
  async function* split(text: string): AsyncGenerator<string | null> {
    if (afterCR && text.startsWith('\n')) text = text.slice(1);
    afterCR = text.endsWith('\r');
    if (text === '') return;
    let start = 0;
    for (const match of text.matchAll(LINE_BREAK)) {
      if (!skipping) yield length + match.index - start > maxLength ? null : parts.join('') + text.slice(start, match.index);
      [parts, length, skipping, start] = [[], 0, false, match.index + match[0].length];
    }
    if (skipping || start === text.length) return;
    if (length + text.length - start > maxLength) {
      [parts, length, skipping] = [[], 0, true];
      yield null;
    } else {
      parts.push(text.slice(start));
      length += text.length - start;
    }
  }
  for await (const chunk of input) yield* split(typeof chunk === 'string' ? chunk : decoder.write(chunk));
  yield* split(decoder.end());
  if (length > 0) yield parts.join('');
}

/** How a JSONL file is read. */
export interface JsonlReadOptions {
  /** The longest line, in characters; a longer one is a DataError. Default MAX_LINE_LENGTH. */
  maxLineLength?: number;
}

/** Yields each non-blank line parsed as JSON; blank lines are skipped but still counted. A line over the bound is a DataError. */
export async function* readJsonlRows(file: string, options: JsonlReadOptions = {}): AsyncGenerator<RawRow> {
  const maxLineLength = options.maxLineLength ?? MAX_LINE_LENGTH;
  const input = createReadStream(file, { encoding: 'utf8' });
  let line = 0;
  try {
    for await (const raw of readLines(input, maxLineLength)) {
      line += 1;
      if (raw === null) throw new DataError(file, line, `line longer than ${maxLineLength} characters, the most a JSONL line may hold`);
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
    input.destroy();
  }
}

/**
 * Writes one JSON value per line, creating the parent folder. Honors stream backpressure. The file is written aside
 * and renamed into place when complete: a reader (or a crash) never sees it half-written. With `replace: false` an
 * existing file is an error, even one another command wrote while the rows were made.
 */
export async function writeJsonl(file: string, rows: Iterable<unknown> | AsyncIterable<unknown>, options: PlaceOptions = {}): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temp = tempSibling(file);
  try {
    // pipeline rejects on a write error (the temp file cannot even be opened) while an async source is still making
    // rows, and stops the source; it waits for the file to close, so the temp file is removed after it is created.
    await pipeline(
      async function* () {
        for await (const row of rows) yield JSON.stringify(row) + '\n';
      },
      createWriteStream(temp, { encoding: 'utf8' }),
    );
    fsyncPath(temp);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined); // the first error is the one to report
    throw err;
  }
  await placeFile(temp, file, options);
}
