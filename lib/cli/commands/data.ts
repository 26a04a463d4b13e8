import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { DATASET_KINDS, DATASET_SCHEMAS, type DatasetKind } from '../../data/schemas.js';
import { DATA_FORMATS, formatOf, readRecords, type DataFormat } from '../../data/records.js';
import { RESPONSE_STYLES, TRACE_FORMATS, type ResponseStyle, type TraceFormat } from '../../task/render.js';
import { writeTaskData } from '../../task/make.js';

interface MakeTaskArgs {
  out: string;
  overwrite: boolean;
  seed: number;
  'n-sft': number;
  'n-rl': number;
  'n-test': number;
  'n-processbench': number;
  'min-depth': number;
  'max-depth': number;
  format: TraceFormat;
  'sft-style': ResponseStyle;
}

/** `prefix-rl data make-task`: the controlled arithmetic task's datasets and tokenizer. */
const makeTaskCommand: CommandModule<object, MakeTaskArgs> = {
  command: 'make-task',
  describe: 'Write the controlled task: SFT, RL and ProcessBench-style sets plus its tokenizer',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'Output folder (new, or empty)' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace the files of an --out that holds some' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed; the same seed gives the same files' })
      .option('n-sft', { type: 'number', default: 4096, describe: 'SFT rows (sft.jsonl)' })
      .option('n-rl', { type: 'number', default: 800, describe: 'RL prompts (rl.jsonl, rl.parquet)' })
      .option('n-test', { type: 'number', default: 200, describe: 'Held-out RL prompts (rl-test.jsonl): accuracy, Best-of-N' })
      .option('n-processbench', { type: 'number', default: 200, describe: 'ProcessBench items, half of them with one error' })
      .option('min-depth', { type: 'number', default: 2, describe: 'Fewest operations per problem' })
      .option('max-depth', { type: 'number', default: 6, describe: 'Most operations per problem' })
      .option('format', {
        choices: TRACE_FORMATS,
        default: 'B1' as TraceFormat,
        describe: 'Trace format of processbench.jsonl: B1 (mild shift), B2 (words) or A (in-distribution)',
      })
      .option('sft-style', {
        choices: RESPONSE_STYLES,
        default: 'A' as ResponseStyle,
        describe: 'Response style of sft.jsonl: A, or Eurus-like action tags',
      }),
  handler: async (args) => {
    if (!args.overwrite && existsSync(args.out) && (await readdir(args.out)).length > 0) {
      throw new Error(`--out ${args.out} already holds files; pass --overwrite to replace them`);
    }
    const written = await writeTaskData({
      outDir: args.out,
      seed: args.seed,
      sftCount: args['n-sft'],
      rlCount: args['n-rl'],
      testCount: args['n-test'],
      processBenchCount: args['n-processbench'],
      task: { minDepth: args['min-depth'], maxDepth: args['max-depth'] },
      processBenchFormat: args.format,
      sftStyle: args['sft-style'],
      replace: args.overwrite,
    });
    for (const { path, rows } of written) process.stdout.write(rows === undefined ? `${path}\n` : `${path}  ${rows} rows\n`);
  },
};

interface ValidateArgs {
  file: string;
  kind: DatasetKind;
  format?: DataFormat;
}

/** `prefix-rl data validate`: stream a file through its schema; a bad row fails the command. */
const validateCommand: CommandModule<object, ValidateArgs> = {
  command: 'validate <file>',
  describe: 'Check every row of a JSONL or Parquet file against a dataset schema and print the row count',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'A .jsonl or .parquet file' })
      .option('kind', { choices: DATASET_KINDS, demandOption: true, describe: 'Dataset schema' })
      .option('format', { choices: DATA_FORMATS, describe: 'Override the format implied by the extension' }),
  handler: async ({ file, kind, format }) => {
    let count = 0;
    for await (const _record of readRecords(file, DATASET_SCHEMAS[kind], { format })) count += 1;
    process.stdout.write(`${file}: ${count} valid ${kind} rows (${formatOf(file, { format })})\n`);
  },
};

/** `prefix-rl data <make-task|validate>`. */
export const dataCommand: CommandModule = {
  command: 'data',
  describe: 'Make the controlled task data, or validate a dataset file',
  builder: (y) => y.command(makeTaskCommand).command(validateCommand).demandCommand(1, 'Name a data command: make-task or validate.'),
  // Never runs: demandCommand always hands over to a subcommand.
  handler: () => {},
};
