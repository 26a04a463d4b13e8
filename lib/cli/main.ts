import yargs from 'yargs';
import { commands } from './commands/index.js';

/** Parses argv and runs one `prefix-rl` command. Each command is a yargs module in ./commands. */
export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('prefix-rl')
    .strict()
    .demandCommand(1, 'Name a command (see --help).')
    .recommendCommands()
    .help()
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
  for (const command of commands) cli = cli.command(command);
  await cli.parseAsync();
}
