// The flags every training command (sft, rm train, rl train) shares: a config file, --set overrides, where the models
// run, and what to do with an output folder that already holds something; and the --device / --dtype of the
// commands that only run models.
import type { Argv } from 'yargs';
import { loadOptions, MODEL_DTYPES, TRAINING_DTYPES, type LoadModelOptions, type ModelDType, type Placement } from '../model/index.js';
import type { RunOutputOptions } from '../run/index.js';

export interface RunFlags {
  config?: string;
  set: string[];
  out: string;
  resume?: string;
  overwrite: boolean;
  quiet: boolean;
  'log-every'?: number;
  device?: string;
  dtype?: ModelDType;
}

/** --dtype and --device of the commands that run models without training them (every dtype; stored in it). */
export const PLACEMENT_OPTIONS = {
  dtype: { choices: MODEL_DTYPES, default: 'float32' as ModelDType, describe: 'Compute dtype; the weights are stored in it' },
  device: { type: 'string', default: 'cpu', describe: 'cpu, cuda or cuda:N' },
} as const;

/** The load options of a model that a command runs without training it. */
export function frozenModel(args: Placement): LoadModelOptions {
  return loadOptions(args, 'frozen');
}

/** --quiet, on every command that shows progress. */
export const QUIET_OPTION = { type: 'boolean', default: false, describe: 'Plain progress lines instead of a bar, even on a terminal' } as const;

/** Adds the shared flags to a command's builder. */
export function withRunFlags<T>(y: Argv<T>) {
  return y
    .option('set', {
      type: 'string',
      array: true,
      default: [] as string[],
      describe: 'Override a config key, e.g. --set checkpoint.every=50 (read as YAML)',
    })
    .option('resume', {
      type: 'string',
      describe: 'Continue the run in --out: "auto" (its latest checkpoint; a fresh start if it has none) or one of its checkpoint folders',
    })
    .option('overwrite', { type: 'boolean', default: false, describe: 'Replace what --out holds' })
    .option('quiet', QUIET_OPTION)
    .option('log-every', { type: 'number', describe: 'Plain progress: a line every N steps' })
    .option('device', { type: 'string', describe: 'Where the models run: cpu, cuda or cuda:N (config device; default cpu)' })
    .option('dtype', {
      choices: TRAINING_DTYPES,
      describe: 'float32, or bfloat16 mixed precision: float32 master weights and AdamW moments (config dtype; default float32)',
    });
}

/** The config keys the shared flags set (undefined when not given, so that the config file's value stands). */
export function placementFlags(args: RunFlags): { device?: string; dtype?: ModelDType } {
  return { device: args.device, dtype: args.dtype };
}

export function runOutput(args: RunFlags): RunOutputOptions {
  return { out: args.out, resume: args.resume, overwrite: args.overwrite, quiet: args.quiet, logEvery: args['log-every'] };
}

/** Prints a run's summary as one JSON line on stdout. */
export function printSummary(summary: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(summary) + '\n');
}
