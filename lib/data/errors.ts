/**
 * A problem with one data file, or with one row of it. The message leads with the location
 * (`file:line: ...` for JSONL, `file: row N: ...` for Parquet, `file: ...` for the whole file),
 * so a CLI can print it as is.
 */
export class DataError extends Error {
  override readonly name = 'DataError';

  /**
   * @param file the path as the caller gave it
   * @param row 1-based line number for JSONL, 0-based row index for Parquet; undefined for the whole file
   * @param detail what is wrong, without the location
   */
  constructor(
    readonly file: string,
    readonly row: number | undefined,
    readonly detail: string,
    readonly rowKind: 'line' | 'row' = 'line',
  ) {
    super(`${file}${row === undefined ? '' : rowKind === 'line' ? `:${row}` : `: row ${row}`}: ${detail}`);
  }
}
