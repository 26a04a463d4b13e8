import type { CommandModule } from 'yargs';
import { configInput } from '../../config/common.js';
import { resolveSftConfig } from '../../config/sft.js';
import { runSft } from '../../run/index.js';
import { runLaunched } from '../launched.js';
import { placementFlags, runOutput, withRunFlags, type RunFlags } from '../run-flags.js';

interface SftArgs extends RunFlags {
  data: string;
  model?: string;
  'init-config'?: string;
  tokenizer?: string;
  steps?: number;
  'batch-size'?: number;
  lr?: number;
  warmup?: number;
  'max-minutes'?: number;
  seed?: number;
}

/** `prefix-rl sft`: supervised fine-tuning on chat records, from a checkpoint or from scratch, as a resumable run. */
export const sftCommand: CommandModule<object, SftArgs> = {
  command: 'sft',
  describe: 'Fine-tune on chat records (Eurus-2-SFT layout, JSONL or Parquet): loss on the final assistant turn',
  builder: (y) =>
    withRunFlags(y)
      .option('config', { type: 'string', describe: 'SFT config (YAML; see configs/sft/); flags and --set override it' })
      .option('data', { type: 'string', demandOption: true, describe: 'SFT records ({"messages": [...]} per row)' })
      .option('model', { type: 'string', describe: 'Checkpoint folder to start from' })
      .option('init-config', { type: 'string', describe: 'Or: a config.json to start from random weights (needs --tokenizer)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer folder (default: --model)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Run folder: run.json, metrics.jsonl, checkpoints/, model/, summary.json' })
      .option('steps', { type: 'number', describe: 'Optimizer steps (config steps; default 400)' })
      .option('batch-size', { type: 'number', describe: 'Sequences per step (config batchSize; default 64)' })
      .option('lr', { type: 'number', describe: 'Peak learning rate (config lr; default 1e-3, cosine decay to minLr)' })
      .option('warmup', { type: 'number', describe: 'Linear warm-up steps (config warmupSteps; default 100)' })
      .option('max-minutes', { type: 'number', describe: 'Stop after this much training time (config maxMinutes)' })
      .option('seed', { type: 'number', describe: 'Seed of the batch order and of --init-config weights (config seed; default 0)' })
      .check((args) => {
        if (!args.model === !args['init-config']) throw new Error('give exactly one of --model or --init-config');
        if (args['init-config'] && !args.tokenizer) throw new Error('--init-config needs --tokenizer');
        return true;
      }),
  handler: async (args) => {
    const flags = {
      steps: args.steps,
      batchSize: args['batch-size'],
      lr: args.lr,
      warmupSteps: args.warmup,
      maxMinutes: args['max-minutes'],
      seed: args.seed,
      ...placementFlags(args),
    };
    const config = resolveSftConfig(await configInput(args.config, args.set, flags));
    await runLaunched(config.device, (group) =>
      runSft({ ...runOutput(args), config, data: args.data, model: args.model, initConfig: args['init-config'], tokenizer: args.tokenizer, group }),
    );
  },
};
