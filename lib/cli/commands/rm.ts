import type { CommandModule } from 'yargs';
import { loadModel } from '../../model/index.js';
import { readRollouts } from '../../rl/rollouts.js';
import { outcomePairs, referenceLogprobs, RM_METHODS, trainRewardModel, type RmMethod } from '../../rm/train.js';

interface RmTrainArgs {
  method: RmMethod;
  rollouts: string;
  model: string;
  out: string;
  steps: number;
  'pairs-per-step': number;
  lr: number;
  beta?: number;
  margin: number;
  seed: number;
  'log-every': number;
}

const trainCommand: CommandModule<object, RmTrainArgs> = {
  command: 'train',
  describe: 'Train an implicit reward model on outcome-labelled rollouts (prefix-rl rollout), from the policy checkpoint',
  builder: (y) =>
    y
      .option('method', { choices: RM_METHODS, demandOption: true, describe: 'ipvrm (BCE on every prefix value), implicit-prm (CE), dpo-rm (pairs)' })
      .option('rollouts', { type: 'string', demandOption: true, describe: 'Rollouts file (.jsonl)' })
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint: π_φ starts from it, π_ref is it frozen' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for the reward model checkpoint' })
      .option('steps', { type: 'number', default: 150, describe: 'Optimizer steps' })
      .option('pairs-per-step', { type: 'number', default: 16, describe: 'Pairs per step (2× as many sequences)' })
      .option('lr', { type: 'number', default: 1e-4, describe: 'Peak learning rate (3 % warm-up, cosine to 0)' })
      .option('beta', { type: 'number', describe: 'β of the implicit reward (default: ipvrm 10, else 0.05)' })
      .option('margin', { type: 'number', default: 0, describe: 'IPVRM margin m' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of the pair choice and batch order' })
      .option('log-every', { type: 'number', default: 10, describe: 'Print a progress line to stderr every N steps' }),
  handler: async (args) => {
    const pairs = outcomePairs(await readRollouts(args.rollouts), args.seed);
    const reference = await loadModel(args.model);
    try {
      await referenceLogprobs(reference, pairs.flatMap((p) => [p.chosen, p.rejected]));
    } finally {
      reference.dispose();
    }
    const model = await loadModel(args.model);
    try {
      const history = await trainRewardModel(model, pairs, {
        method: args.method,
        steps: args.steps,
        pairsPerStep: args['pairs-per-step'],
        lr: args.lr,
        beta: args.beta,
        margin: args.margin,
        seed: args.seed,
        onStep: (s) => {
          if ((s.step + 1) % args['log-every'] === 0) {
            process.stderr.write(`step ${s.step + 1}: loss ${s.loss.toFixed(4)} pair-acc ${s.pairAccuracy.toFixed(2)} lr ${s.lr.toExponential(2)} ${s.seconds.toFixed(0)} s\n`);
          }
        },
      });
      await model.save(args.out);
      const last = history.at(-1)!;
      process.stdout.write(JSON.stringify({ out: args.out, method: args.method, pairs: pairs.length, steps: history.length, loss: last.loss, seconds: last.seconds }) + '\n');
    } finally {
      model.dispose();
    }
  },
};

/** `prefix-rl rm`: reward-model commands. */
export const rmCommand: CommandModule = {
  command: 'rm',
  describe: 'Reward models: train (IPVRM, Implicit PRM, DPO-RM) on rollouts',
  builder: (y) => y.command(trainCommand).demandCommand(1, 'Name an rm command: train.'),
  // Never runs: demandCommand always hands over to a subcommand.
  handler: () => {},
};
