import type { CommandModule } from 'yargs';
import { configInput } from '../../config/common.js';
import { resolveRlConfig, RL_PRESET_NAMES } from '../../config/rl.js';
import { runRl } from '../../run/index.js';
import { runLaunched } from '../launched.js';
import { placementFlags, runOutput, withRunFlags, type RunFlags } from '../run-flags.js';

interface RlTrainArgs extends RunFlags {
  config: string;
  model: string;
  'reward-model'?: string;
  reference?: string;
  data: string;
  'eval-data'?: string;
  steps?: number;
  seed?: number;
}

const trainCommand: CommandModule<object, RlTrainArgs> = {
  command: 'train',
  describe: `RL of a policy (presets: ${RL_PRESET_NAMES.join(', ')}) with verified outcomes and an online implicit reward model`,
  builder: (y) =>
    withRunFlags(y)
      .option('config', { type: 'string', demandOption: true, describe: 'RL experiment config (YAML; see configs/rl/)' })
      .option('model', { type: 'string', demandOption: true, describe: 'Policy checkpoint to start from (with its tokenizer)' })
      .option('reward-model', { type: 'string', describe: 'Checkpoint π_φ starts from, e.g. <rm run>/model (default: --model)' })
      .option('reference', { type: 'string', describe: 'Frozen π_ref when rewardModel.reference is frozen (default: --model)' })
      .option('data', { type: 'string', demandOption: true, describe: 'RL prompts (Eurus-2-RL layout, JSONL or Parquet)' })
      .option('eval-data', { type: 'string', describe: 'Held-out prompts: avg@k before training, every eval.every steps and at the end' })
      .option('out', {
        type: 'string',
        demandOption: true,
        describe: 'Run folder: run.json, metrics.jsonl, checkpoints/, policy/, reward-model/, summary.json',
      })
      .option('steps', { type: 'number', describe: 'RL steps (overrides the config)' })
      .option('seed', { type: 'number', describe: 'Seed (overrides the config)' }),
  handler: async (args) => {
    const input = await configInput(args.config, args.set, { steps: args.steps, seed: args.seed, ...placementFlags(args) });
    let config;
    try {
      config = resolveRlConfig(input);
    } catch (err) {
      throw new Error(`${args.config}: ${(err as Error).message}`);
    }
    const files = {
      configFile: args.config,
      model: args.model,
      rewardModel: args['reward-model'],
      reference: args.reference,
      data: args.data,
      evalData: args['eval-data'],
    };
    await runLaunched(config.device, (group) => runRl({ ...runOutput(args), ...files, config, group }));
  },
};

/** `prefix-rl rl`: reinforcement-learning commands. */
export const rlCommand: CommandModule = {
  command: 'rl',
  describe: 'Reinforcement learning: train (GRPO, PRIME, GRPO+IPVRM, DistRL) from an experiment config',
  builder: (y) => y.command(trainCommand).demandCommand(1, 'Name an rl command: train.'),
  // Never runs: demandCommand always hands over to a subcommand.
  handler: () => {},
};
