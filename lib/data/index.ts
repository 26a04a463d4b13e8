export { DataError } from './errors.js';
export * from './schemas.js';
export { DATA_FORMATS, readRecords, loadDataset, formatOf, type DataFormat, type ReadOptions } from './records.js';
export { writeJsonl } from './jsonl.js';
export { writeParquet } from './parquet.js';
