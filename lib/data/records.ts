// Schema-checked reading: pick the reader by file extension, validate every row, and say where a bad row is.
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { z } from 'zod';
import { DataError } from './errors.js';
import { readJsonlRows, type JsonlReadOptions } from './jsonl.js';
import { readParquetRows } from './parquet.js';
import { DATASET_SCHEMAS, type DatasetKind, type DatasetRecord } from './schemas.js';

export const DATA_FORMATS = ['jsonl', 'parquet'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export interface ReadOptions extends JsonlReadOptions {
  /** Overrides the format implied by the extension (.jsonl/.ndjson, .parquet). */
  format?: DataFormat;
}

const FORMAT_BY_EXTENSION: Record<string, DataFormat> = { '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.parquet': 'parquet' };

export function formatOf(file: string, options: ReadOptions = {}): DataFormat {
  const format = options.format ?? FORMAT_BY_EXTENSION[extname(file).toLowerCase()];
  if (!format) throw new DataError(file, undefined, 'unknown extension; expected .jsonl, .ndjson or .parquet (or pass a format)');
  return format;
}

/**
 * Streams the rows of a JSONL or Parquet file, each parsed by `schema`. The first bad row ends the
 * stream with a DataError naming the file and the row (1-based line for JSONL, row index for Parquet).
 */
export async function* readRecords<S extends z.ZodType>(
  file: string,
  schema: S,
  options: ReadOptions & {
    /** A check beyond the schema (e.g. token ids against a vocabulary): what is wrong with the record, or undefined. */
    check?: (record: z.output<S>) => string | undefined;
  } = {},
): AsyncGenerator<z.output<S>> {
  const format = formatOf(file, options);
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new DataError(file, undefined, err.code === 'ENOENT' ? 'no such file' : err.message);
  });
  if (!info.isFile()) throw new DataError(file, undefined, 'not a file');
  const rows = format === 'jsonl' ? readJsonlRows(file, options) : readParquetRows(file);
  for await (const { row, value } of rows) {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new DataError(file, row, describeIssues(parsed.error.issues, value), format === 'jsonl' ? 'line' : 'row');
    }
    const problem = options.check?.(parsed.data);
    if (problem) throw new DataError(file, row, problem, format === 'jsonl' ? 'line' : 'row');
    yield parsed.data;
  }
}

/** Reads a whole dataset of a known kind into memory. */
export async function loadDataset<K extends DatasetKind>(kind: K, file: string, options: ReadOptions = {}): Promise<DatasetRecord<K>[]> {
  const records: DatasetRecord<K>[] = [];
  for await (const record of readRecords(file, DATASET_SCHEMAS[kind], options)) records.push(record as DatasetRecord<K>);
  return records;
}

/** One line for the first issue, e.g. `field "steps[2]": expected string, got number (+1 more)`. */
function describeIssues(issues: readonly z.core.$ZodIssue[], row: unknown): string {
  const [first] = issues;
  const more = issues.length > 1 ? ` (+${issues.length - 1} more)` : '';
  return describeIssue(first, row) + more;
}

function describeIssue(issue: z.core.$ZodIssue, row: unknown): string {
  const path = issue.path.map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`)).join('');
  if (issue.code === 'invalid_type') {
    const value = valueAt(row, issue.path);
    if (path === '') return `expected a JSON ${issue.expected}, got ${kindOf(value)}`;
    if (value === undefined) return `missing field "${path}"`;
    return `field "${path}": expected ${issue.expected}, got ${kindOf(value)}`;
  }
  return path === '' ? issue.message : `field "${path}": ${issue.message}`;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
