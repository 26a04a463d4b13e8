import { jest } from '@jest/globals';
import fs from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { jsonLines } from '../lib/cli/json-lines.js';
import { DataError, EvalProblemSchema, ProcessBenchRecordSchema, loadDataset, readRecords, writeJsonl, writeParquet } from '../lib/data/index.js';
import { MAX_LINE_LENGTH, readLines } from '../lib/data/jsonl.js';

const DATA = 'fixtures/data';
const realWriteFileSync = fs.writeFileSync;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-data-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function collect<T>(records: AsyncIterable<T>): Promise<T[]> {
  const rows: T[] = [];
  for await (const record of records) rows.push(record);
  return rows;
}

/** The DataError a promise rejects with. */
async function dataError(promise: Promise<unknown>): Promise<DataError> {
  const err = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(err).toBeInstanceOf(DataError);
  return err as DataError;
}

describe('loaders on the public-schema fixtures', () => {
  test('Eurus-2-SFT rows', async () => {
    const rows = await loadDataset('sft', `${DATA}/eurus2-sft.jsonl`);
    expect(rows).toHaveLength(3);
    expect(rows[0].messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
  });

  test('Eurus-2-RL rows read the same from JSONL and Parquet', async () => {
    const fromJsonl = await loadDataset('rl', `${DATA}/eurus2-rl.jsonl`);
    const fromParquet = await loadDataset('rl', `${DATA}/eurus2-rl.parquet`);
    expect(fromJsonl).toHaveLength(3);
    expect(fromParquet).toEqual(fromJsonl);
    expect(fromParquet[2].reward_model.ground_truth).toContain('"inputs"');
    expect(fromParquet[1].extra_info).toEqual({ index: 1, split: 'dummy' });
  });

  test('eval sets are normalised: string answers, ids from unique_id', async () => {
    const math = await loadDataset('eval', `${DATA}/math500.jsonl`);
    expect(math[1]).toEqual({
      problem: 'Simplify $\\sqrt{50}$.',
      answer: '5\\sqrt{2}',
      solution: '$\\sqrt{50} = \\sqrt{25 \\cdot 2} = \\boxed{5\\sqrt{2}}$.',
      id: 'test/algebra/2.json',
      level: 2,
      subject: 'Algebra',
    });
    const amc = await loadDataset('eval', `${DATA}/amc.jsonl`);
    expect(amc.map(({ id, answer }) => ({ id, answer }))).toEqual([
      { id: '0', answer: '136' },
      { id: '1', answer: '10' },
    ]);
  });

  test('eval sets accept "question" for "problem" and reject rows with neither', async () => {
    const file = join(tmp, 'olympiad.jsonl');
    await writeJsonl(file, [{ question: 'What is 2+2?', answer: 4 }, { answer: '1' }]);
    const records = readRecords(file, EvalProblemSchema);
    expect((await records.next()).value).toEqual({ problem: 'What is 2+2?', answer: '4' });
    const err = await dataError(records.next());
    expect(err.message).toBe(`${file}:2: field "problem": needs a "problem" or a "question" string`);
  });

  test('ProcessBench rows from JSONL and Parquet', async () => {
    const fromJsonl = await loadDataset('processbench', `${DATA}/processbench.jsonl`);
    expect(fromJsonl.map((row) => row.label)).toEqual([-1, 1, -1, 0]);
    expect(await loadDataset('processbench', `${DATA}/processbench.parquet`)).toEqual(fromJsonl);
  });
});

describe('errors name the file and the row', () => {
  test('malformed JSON line', async () => {
    const file = `${DATA}/malformed/bad-json.jsonl`;
    const records = readRecords(file, ProcessBenchRecordSchema);
    // The rows before the bad line stream out first.
    expect((await records.next()).value.id).toBe('gsm8k-0');
    expect((await records.next()).value.id).toBe('gsm8k-1');
    const err = await dataError(records.next());
    expect(err.file).toBe(file);
    expect(err.row).toBe(3);
    expect(err.message).toMatch(new RegExp(`^${file}:3: malformed JSON: `));
  });

  test('missing field', async () => {
    const err = await dataError(loadDataset('rl', `${DATA}/malformed/missing-field.jsonl`));
    expect(err.message).toBe(`${DATA}/malformed/missing-field.jsonl:2: missing field "reward_model"`);
  });

  test('label out of range, JSONL line and Parquet row index', async () => {
    const jsonl = await dataError(loadDataset('processbench', `${DATA}/malformed/label-out-of-range.jsonl`));
    expect(jsonl.message).toBe(`${DATA}/malformed/label-out-of-range.jsonl:2: field "label": must be -1 or a step index in 0..2, got 3`);
    const parquet = await dataError(loadDataset('processbench', `${DATA}/malformed/label-out-of-range.parquet`));
    expect(parquet.row).toBe(2);
    expect(parquet.message).toBe(`${DATA}/malformed/label-out-of-range.parquet: row 2: field "label": must be -1 or a step index in 0..2, got 7`);
  });

  test('wrong type', async () => {
    const err = await dataError(loadDataset('processbench', `${DATA}/malformed/steps-not-strings.jsonl`));
    expect(err.message).toBe(`${DATA}/malformed/steps-not-strings.jsonl:1: field "steps": expected array, got string`);
  });

  test('wrong element type and bad enum value point at the element', async () => {
    const file = join(tmp, 'bad-elements.jsonl');
    await writeJsonl(file, [{ messages: [{ role: 'user', content: 'hi' }] }, { messages: [{ role: 'user', content: 7 }] }]);
    expect((await dataError(loadDataset('sft', file))).message).toBe(`${file}:2: field "messages[0].content": expected string, got number`);
    await writeJsonl(file, [{ messages: [{ role: 'tool', content: 'x' }] }]);
    expect((await dataError(loadDataset('sft', file))).message).toMatch(new RegExp(`^${file}:1: field "messages\\[0\\]\\.role": `));
  });

  test('a line that is not an object; blank lines still count', async () => {
    const file = join(tmp, 'not-object.jsonl');
    await writeFile(file, '{"messages": [{"role": "user", "content": "a"}]}\n\n[1, 2]\n');
    expect((await dataError(loadDataset('sft', file))).message).toBe(`${file}:3: expected a JSON object, got array`);
  });

  test('missing file, unknown extension, unreadable Parquet', async () => {
    const missing = join(tmp, 'nope.jsonl');
    const err = await dataError(loadDataset('sft', missing));
    expect(err.message).toBe(`${missing}: no such file`);
    expect(err.row).toBeUndefined();
    expect((await dataError(loadDataset('sft', 'data.csv'))).message).toMatch(/^data\.csv: unknown extension/);
    const fake = join(tmp, 'fake.parquet');
    await writeFile(fake, 'not parquet at all');
    expect((await dataError(loadDataset('rl', fake))).message).toMatch(new RegExp(`^${fake}: not a readable Parquet file`));
  });

  test('the format option overrides the extension', async () => {
    const file = join(tmp, 'rows.txt');
    await writeJsonl(file, [{ messages: [{ role: 'user', content: 'a' }] }]);
    expect(await loadDataset('sft', file, { format: 'jsonl' })).toHaveLength(1);
  });
});

describe('Parquet writer', () => {
  test('round trip of nested lists, structs, ints, doubles, booleans and nulls', async () => {
    const rows = [
      { name: 'a', count: 1, score: 0.5, ok: true, tags: ['x', 'y'], meta: { depth: 3, note: 'n' }, pairs: [{ k: 1 }] },
      { name: 'b', count: -7, score: 2, ok: false, tags: [], meta: { depth: 4, note: null }, pairs: [{ k: 2 }, { k: 3 }] },
      { name: null, count: 2 ** 40, score: -1.25, ok: null, tags: ['z'], meta: null, pairs: null },
    ];
    const file = join(tmp, 'round-trip.parquet');
    await writeParquet(file, rows);
    const back = await collect(readRecords(file, z.unknown()));
    // Null leaves come back as null; hyparquet reads a null list or struct as undefined.
    expect(back).toEqual([rows[0], rows[1], { ...rows[2], meta: undefined, pairs: undefined }]);
  });

  test('rows of later row groups keep their file-wide index', async () => {
    // hyparquet-writer's first row group holds 1000 rows, so 2500 rows span two groups.
    const rows = Array.from({ length: 2500 }, (_, i) => ({ id: `r${i}`, problem: 'p', steps: ['a', 'b'], label: i === 1700 ? 2 : -1 }));
    const file = join(tmp, 'groups.parquet');
    await writeParquet(file, rows);
    const records = readRecords(file, ProcessBenchRecordSchema);
    let read = 0;
    const err = await dataError(
      (async () => {
        for await (const record of records) expect(record.id).toBe(`r${read++}`);
      })(),
    );
    expect(read).toBe(1700);
    expect(err.message).toBe(`${file}: row 1700: field "label": must be -1 or a step index in 0..1, got 2`);
  });

  test('refuses rows it cannot type', async () => {
    const file = join(tmp, 'bad.parquet');
    await expect(writeParquet(file, [])).rejects.toThrow(/no rows/);
    await expect(writeParquet(file, [{ a: 1 }, { a: 'x' }])).rejects.toThrow(/field "a" mixes number and string/);
    await expect(writeParquet(file, [{ a: null }])).rejects.toThrow(/field "a" has no non-null values/);
  });
});

test('writeJsonl streams any iterable and creates the folder', async () => {
  const file = join(tmp, 'nested', 'dir', 'rows.jsonl');
  async function* rows() {
    for (let i = 0; i < 3; i++) yield { messages: [{ role: 'user', content: `q${i}` }] };
  }
  await writeJsonl(file, rows());
  expect((await loadDataset('sft', file)).map((row) => row.messages[0].content)).toEqual(['q0', 'q1', 'q2']);
});

test('a byte-order mark before the first JSON line is not part of the JSON; anywhere else it is an error', async () => {
  const row = JSON.stringify({ messages: [{ role: 'user', content: 'q' }] });
  await writeFile(join(tmp, 'bom.jsonl'), `\uFEFF${row}\n${row}\n`);
  expect(await loadDataset('sft', join(tmp, 'bom.jsonl'))).toHaveLength(2);
  await writeFile(join(tmp, 'bom2.jsonl'), `${row}\n\uFEFF${row}\n`);
  await expect(loadDataset('sft', join(tmp, 'bom2.jsonl'))).rejects.toThrow(/bom2\.jsonl:2: malformed JSON/);
});

describe('line length bound', () => {
  test('the default is 64 Mi characters, as MAX_LINE_LENGTH documents', () => {
    expect(MAX_LINE_LENGTH).toBe(64 * 1024 * 1024);
  });

  test('a JSONL line over the limit is a DataError naming file:line and the limit, read across chunks', async () => {
    const file = join(tmp, 'long-line.jsonl');
    const row = JSON.stringify({ messages: [{ role: 'user', content: 'q' }] });
    await writeFile(file, `${row}\n${JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(200_000) }] })}\n${row}\n`);
    const err = await dataError(loadDataset('sft', file, { maxLineLength: 100_000 }));
    expect(err.message).toBe(`${file}:2: line longer than 100000 characters, the most a JSONL line may hold`);
    expect(await loadDataset('sft', file, { maxLineLength: 300_000 })).toHaveLength(3);
  });

  test('readLines splits like readline (\\n, \\r\\n, lone \\r, across chunks) and marks an over-long line null', async () => {
    const lines = async (chunks: (string | Buffer)[], max = 5) => collect(readLines(Readable.from(chunks), max));
    expect(await lines(['a\r', '\nb\rc\n\nd'])).toEqual(['a', 'b', 'c', '', 'd']);
    expect(await lines([Buffer.from('é\n').subarray(0, 1), Buffer.from('é\n').subarray(1)])).toEqual(['é']);
    expect(await lines(['12345\n123', '456\nok\n', '1234567'])).toEqual(['12345', null, 'ok', null]);
  });

  test('a stdin line over the limit stops jsonLines with stdin:N', async () => {
    const input = Readable.from(['{"a": 1}\n', `{"a": "${'x'.repeat(50)}"}\n`]);
    const read = collect(jsonLines(input, z.object({ a: z.unknown() }), 20));
    await expect(read).rejects.toThrow('stdin:2: line longer than 20 characters');
  });
});

describe('writers', () => {
  test('writeJsonl rejects, leaving no temp file, when the file cannot be opened while an async source still yields', async () => {
    const dir = join(tmp, 'long-name');
    async function* slowly() {
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        yield { i };
      }
    }
    // Its temp sibling's name is longer than a file name may be (255 bytes).
    await expect(writeJsonl(join(dir, 'x'.repeat(240)), slowly())).rejects.toThrow(/ENAMETOOLONG/);
    expect(await readdir(dir)).toEqual([]);
  });

  test('writeParquet replaces a file atomically: a failed write leaves the old one', async () => {
    const file = join(tmp, 'atomic', 'rows.parquet');
    await writeParquet(file, [{ a: 1 }]);
    const old = await readFile(file);
    // hyparquet-writer creates the file, then appends its bytes: fail the append, as a full disk would.
    const append = jest.spyOn(fs, 'writeFileSync').mockImplementation((path, data, options) => {
      if ((options as { flag?: string }).flag === 'a') throw new Error('ENOSPC: no space left on device');
      realWriteFileSync(path, data, options);
    });
    try {
      await expect(writeParquet(file, [{ a: 2 }])).rejects.toThrow(/ENOSPC/);
    } finally {
      append.mockRestore();
    }
    expect(await readFile(file)).toEqual(old);
    expect(await readdir(join(tmp, 'atomic'))).toEqual(['rows.parquet']);
  });

  test('a new output (replace: false) is never written over one another command wrote meanwhile', async () => {
    const jsonl = join(tmp, 'new', 'rows.jsonl');
    const parquet = join(tmp, 'new', 'rows.parquet');
    await writeJsonl(jsonl, [{ a: 1 }], { replace: false });
    await writeParquet(parquet, [{ a: 1 }], { replace: false });
    await expect(writeJsonl(jsonl, [{ a: 2 }], { replace: false })).rejects.toThrow(
      `${jsonl} already exists: another command wrote it meanwhile; it was left as is`,
    );
    await expect(writeParquet(parquet, [{ a: 2 }], { replace: false })).rejects.toThrow(`${parquet} already exists`);
    expect(await readFile(jsonl, 'utf8')).toBe('{"a":1}\n');
    expect((await readdir(join(tmp, 'new'))).sort()).toEqual(['rows.jsonl', 'rows.parquet']);
    await writeJsonl(jsonl, [{ a: 3 }]);
    expect(await readFile(jsonl, 'utf8')).toBe('{"a":3}\n');
  });
});
