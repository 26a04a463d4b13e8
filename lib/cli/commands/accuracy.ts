import type { CommandModule } from 'yargs';
import { loadDataset } from '../../data/records.js';
import { sampledAccuracy } from '../../eval/accuracy.js';
import { loadModel } from '../../model/index.js';
import { loadTokenizer } from '../../tokenizer/index.js';

interface AccuracyArgs {
  model: string;
  data: string;
  limit?: number;
  samples: number;
  temperature: number;
  'max-new-tokens': number;
  'batch-size': number;
  seed: number;
}

/** `prefix-rl accuracy`: avg@k of a model on RL prompts, each sample checked by its verifier. */
export const accuracyCommand: CommandModule<object, AccuracyArgs> = {
  command: 'accuracy',
  describe: 'Sample responses to RL prompts (Eurus-2-RL layout) and print the verified accuracy (avg@k) as JSON',
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Checkpoint folder with a tokenizer' })
      .option('data', { type: 'string', demandOption: true, describe: 'RL records (JSONL or Parquet)' })
      .option('limit', { type: 'number', describe: 'Use the first N prompts' })
      .option('samples', { type: 'number', default: 1, describe: 'Samples per prompt (k of avg@k)' })
      .option('temperature', { type: 'number', default: 1, describe: 'Sampling temperature (0 = greedy)' })
      .option('max-new-tokens', { type: 'number', default: 256, describe: 'Most new tokens per response' })
      .option('batch-size', { type: 'number', default: 64, describe: 'Responses sampled together' })
      .option('seed', { type: 'number', default: 0, describe: 'Sampling seed' })
      .check((args) => {
        if (!Number.isInteger(args.samples) || args.samples < 1) throw new Error('--samples must be a positive integer');
        if (args.limit !== undefined && (!Number.isInteger(args.limit) || args.limit < 1)) throw new Error('--limit must be a positive integer');
        return true;
      }),
  handler: async (args) => {
    const records = (await loadDataset('rl', args.data)).slice(0, args.limit);
    const [tokenizer, model] = [await loadTokenizer(args.model), await loadModel(args.model)];
    try {
      const report = await sampledAccuracy(model, tokenizer, records, {
        samples: args.samples,
        temperature: args.temperature,
        maxNewTokens: args['max-new-tokens'],
        batchSize: args['batch-size'],
        seed: args.seed,
      });
      process.stdout.write(JSON.stringify(report) + '\n');
    } finally {
      model.dispose();
    }
  },
};
