import yargs, { type Argv } from 'yargs';
import { commands } from './commands/index.js';

/** Parses argv and runs one `prefix-rl` command. Each command is a yargs module in ./commands. */
export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('prefix-rl')
    .strict()
    .demandCommand(1, 'Name a command (see --help).')
    .recommendCommands()
    .help()
    // yargs passes the parser as the second argument (its types declare only the first).
    .middleware(checkFlagValues as never)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
  for (const command of commands) cli = cli.command(command);
  await cli.parseAsync();
}

const isInteger = (v: number) => Number.isInteger(v);
/** What a flag of this name must hold, in every command that has it. */
const FLAG_RULES: Record<string, [test: (v: number) => boolean, what: string]> = {
  'batch-size': [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  samples: [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  limit: [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  'max-new-tokens': [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  'time-limit-ms': [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  'memory-mb': [(v) => isInteger(v) && v >= 1, 'a positive integer'],
  seed: [(v) => isInteger(v) && v >= 0, 'a non-negative integer'],
  grace: [(v) => v >= 0, 'a number of seconds >= 0'],
  'shutdown-grace': [(v) => v >= 0, 'a number of seconds >= 0'],
  coef: [(v) => v > 0, 'a positive number'],
  'num-thresholds': [(v) => isInteger(v) && v >= 2, 'an integer >= 2'],
  'bon-n': [(v) => isInteger(v) && v >= 1, 'a positive integer'],
};

/**
 * Every command's flags, checked once before it runs: a number flag given something that is not a finite number
 * (yargs reads "abc" as NaN), a flag that takes one value given twice (yargs would collect a list the command does
 * not expect), and the flags of FLAG_RULES outside their range are refused, named.
 */
function checkFlagValues(argv: Record<string, unknown>, instance: Argv): void {
  const { array = [], number = [] } = (instance as unknown as { getOptions(): { array?: string[]; number?: string[] } }).getOptions();
  for (const [key, value] of Object.entries(argv)) {
    // Not flags: the positionals, the script, what follows `--` (launch's command); camelCase keys repeat the flags'.
    if (key === '_' || key === '$0' || key === '--' || /[A-Z]/.test(key)) continue;
    if (Array.isArray(value) && !array.includes(key)) throw new Error(`--${key} was given ${value.length} times; it takes one value`);
    const values = Array.isArray(value) ? value : [value];
    if (!number.includes(key)) continue;
    for (const v of values) {
      if (typeof v !== 'number') continue;
      if (!Number.isFinite(v)) throw new Error(`--${key} must be a finite number`);
      const rule = FLAG_RULES[key];
      if (rule && !rule[0](v)) throw new Error(`--${key} must be ${rule[1]}, got ${v}`);
    }
  }
}
