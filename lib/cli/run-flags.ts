// The flags every training command (sft, rm train, rl train) shares: a config file, --set overrides, and what to do
// with an output folder that already holds something.
import type { Argv } from 'yargs';
import type { RunOutputOptions } from '../run/index.js';

export interface RunFlags {
  config?: string;
  set: string[];
  out: string;
  resume?: string;
  overwrite: boolean;
  quiet: boolean;
  'log-every'?: number;
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
    .option('log-every', { type: 'number', describe: 'Plain progress: a line every N steps' });
}

export function runOutput(args: RunFlags): RunOutputOptions {
  return { out: args.out, resume: args.resume, overwrite: args.overwrite, quiet: args.quiet, logEvery: args['log-every'] };
}

/** Prints a run's summary as one JSON line on stdout. */
export function printSummary(summary: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(summary) + '\n');
}
