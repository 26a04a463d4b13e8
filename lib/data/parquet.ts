// Parquet in the layout pyarrow / HF `datasets` write: nested lists and structs as real Parquet groups
// (not JSON strings), optional fields, integers as INT64. Read one row group at a time.
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, type SchemaElement } from 'hyparquet';
import { parquetWriteFile } from 'hyparquet-writer';
import { fsyncPath, placeFile, tempSibling, type PlaceOptions } from '../util/fs.js';
import { DataError } from './errors.js';
import type { RawRow } from './jsonl.js';

/** Yields the rows of a Parquet file with their 0-based row index; INT64 values come back as numbers. */
export async function* readParquetRows(file: string): AsyncGenerator<RawRow> {
  const source = await asyncBufferFromFile(file);
  const metadata = await parquetMetadataAsync(source).catch((err: Error) => {
    throw new DataError(file, undefined, `not a readable Parquet file: ${err.message}`);
  });
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({ file: source, metadata, rowStart, rowEnd }).catch((err: Error) => {
      throw new DataError(file, rowStart, `unreadable row group: ${err.message}`, 'row');
    });
    for (const [offset, value] of rows.entries()) {
      const row = rowStart + offset;
      yield { row, value: fromParquetValue(value, (detail) => new DataError(file, row, detail, 'row')) };
    }
    rowStart = rowEnd;
  }
}

/** hyparquet returns INT64 as bigint; the schemas expect plain numbers. */
function fromParquetValue(value: unknown, fail: (detail: string) => Error): unknown {
  if (typeof value === 'bigint') {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw fail(`integer ${value} does not fit a JavaScript number`);
    }
    return Number(value);
  }
  if (Array.isArray(value)) return value.map((item) => fromParquetValue(item, fail));
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fromParquetValue(item, fail)]));
  }
  return value;
}

/** The Parquet type of one field, inferred from the values written to it. */
type FieldType =
  { kind: 'string' | 'int' | 'double' | 'boolean' } | { kind: 'list'; element: FieldType } | { kind: 'struct'; fields: Map<string, FieldType> };

/**
 * Writes objects as one Parquet file, creating the parent folder. The schema is inferred from the rows:
 * strings, numbers (INT64 when every value is an integer, else DOUBLE), booleans, arrays (LIST) and
 * objects (struct), all nullable. A column must have at least one non-null value. Like writeJsonl, the file is written
 * aside and moved into place when complete (`replace: false`: only if it is still new).
 */
export async function writeParquet(file: string, rows: readonly Record<string, unknown>[], options: PlaceOptions = {}): Promise<void> {
  if (rows.length === 0) throw new Error(`writeParquet ${file}: no rows to infer a schema from`);
  const root = inferType(rows, '');
  if (root.kind !== 'struct') throw new Error(`writeParquet ${file}: rows must be objects`);
  const columns = [...root.fields];
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }, ...columns.flatMap(([name, type]) => schemaElements(name, type))];
  const columnData = columns.map(([name, type]) => ({
    name,
    data: rows.map((row) => toParquetValue(row[name], type)),
  }));
  await mkdir(dirname(file), { recursive: true });
  // parquetWriteFile truncates its file, then appends: never let a reader (or a failure) see that on `file`.
  const temp = tempSibling(file);
  try {
    parquetWriteFile({ filename: temp, columnData, schema });
    fsyncPath(temp);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined); // the first error is the one to report
    throw err;
  }
  await placeFile(temp, file, options);
}

function inferType(values: readonly unknown[], path: string): FieldType {
  const present = values.filter((value) => value !== null && value !== undefined);
  const where = path === '' ? 'rows' : `field "${path}"`;
  if (present.length === 0) throw new Error(`writeParquet: ${where} has no non-null values to infer a type from`);
  const kinds = new Set(present.map(valueKind));
  if (kinds.size > 1) throw new Error(`writeParquet: ${where} mixes ${[...kinds].join(' and ')} values`);
  const [kind] = kinds;
  switch (kind) {
    case 'string':
    case 'boolean':
      return { kind };
    case 'number':
      return { kind: present.every((value) => Number.isSafeInteger(value)) ? 'int' : 'double' };
    case 'array':
      return { kind: 'list', element: inferType((present as unknown[][]).flat(), `${path}[]`) };
    case 'object': {
      const objects = present as Record<string, unknown>[];
      const names = [...new Set(objects.flatMap((object) => Object.keys(object)))];
      const prefix = path === '' ? '' : `${path}.`;
      return {
        kind: 'struct',
        fields: new Map(
          names.map((name) => [
            name,
            inferType(
              objects.map((object) => object[name]),
              prefix + name,
            ),
          ]),
        ),
      };
    }
    default:
      throw new Error(`writeParquet: ${where} holds ${kind} values, which have no Parquet type here`);
  }
}

function valueKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (isPlainObject(value)) return 'object';
  return typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** Flat pre-order schema elements for one field; lists use the standard 3-level LIST layout. */
function schemaElements(name: string, type: FieldType): SchemaElement[] {
  const repetition_type = 'OPTIONAL';
  switch (type.kind) {
    case 'string':
      return [{ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type }];
    case 'int':
      return [{ name, type: 'INT64', repetition_type }];
    case 'double':
      return [{ name, type: 'DOUBLE', repetition_type }];
    case 'boolean':
      return [{ name, type: 'BOOLEAN', repetition_type }];
    case 'list':
      return [
        { name, converted_type: 'LIST', num_children: 1, repetition_type },
        { name: 'list', num_children: 1, repetition_type: 'REPEATED' },
        ...schemaElements('element', type.element),
      ];
    case 'struct':
      return [
        { name, num_children: type.fields.size, repetition_type },
        ...[...type.fields].flatMap(([field, fieldType]) => schemaElements(field, fieldType)),
      ];
  }
}

/** hyparquet-writer wants bigint for INT64 leaves, also inside lists and structs. */
function toParquetValue(value: unknown, type: FieldType): unknown {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case 'int':
      return BigInt(value as number);
    case 'list':
      return (value as unknown[]).map((item) => toParquetValue(item, type.element));
    case 'struct':
      return Object.fromEntries(
        [...type.fields].map(([field, fieldType]) => [field, toParquetValue((value as Record<string, unknown>)[field], fieldType)]),
      );
    default:
      return value;
  }
}
