import type { CommandModule } from 'yargs';
import { dataCommand } from './data.js';
import { envCommand } from './env.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { launchCommand } from './launch.js';
import { logprobsCommand } from './logprobs.js';
import { rlCommand } from './rl.js';
import { reportCommand } from './report.js';
import { rmCommand } from './rm.js';
import { serveCommand } from './serve.js';
import { accuracyCommand, rolloutCommand } from './rollout.js';
import { sftCommand } from './sft.js';
import { verifyCommand } from './verify.js';

/** Every CLI command, one module each. Add a command by adding its module here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  envCommand,
  dataCommand,
  verifyCommand,
  logprobsCommand,
  generateCommand,
  sftCommand,
  rolloutCommand,
  accuracyCommand,
  evalCommand,
  rmCommand,
  rlCommand,
  launchCommand,
  serveCommand,
  reportCommand,
];
