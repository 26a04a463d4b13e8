import type { CommandModule } from 'yargs';
import { frozenModel, PLACEMENT_OPTIONS, QUIET_OPTION } from '../run-flags.js';
import { checkOutputFile } from '../../util/fs.js';
import { batchProgress } from '../../run/index.js';
import { writeJsonl } from '../../data/jsonl.js';
import { loadDataset } from '../../data/records.js';
import { accuracyOf } from '../../eval/accuracy.js';
import { loadModel, type ModelDType } from '../../model/index.js';
import { sampleRollouts, type RolloutOptions } from '../../rollout/rollouts.js';
import { loadTokenizer } from '../../tokenizer/index.js';

/** The sampling flags of rollout, accuracy and eval. */
export interface SamplingArgs {
  samples: number;
  temperature: number;
  'top-p': number;
  'max-new-tokens': number;
  'batch-size': number;
  seed: number;
}

/** The sampling flags as RolloutOptions. */
export function samplingOptions(args: SamplingArgs): RolloutOptions {
  return {
    samples: args.samples,
    temperature: args.temperature,
    topP: args['top-p'],
    maxNewTokens: args['max-new-tokens'],
    batchSize: args['batch-size'],
    seed: args.seed,
  };
}

interface RolloutArgs extends SamplingArgs {
  model: string;
  device: string;
  dtype: ModelDType;
  data: string;
  out?: string;
  overwrite?: boolean;
  limit?: number;
  quiet?: boolean;
}

const options = {
  model: { type: 'string', demandOption: true, describe: 'Checkpoint folder with a tokenizer' },
  data: { type: 'string', demandOption: true, describe: 'RL records (Eurus-2-RL layout, JSONL or Parquet)' },
  limit: { type: 'number', describe: 'Use the first N prompts' },
  temperature: { type: 'number', default: 1, describe: 'Sampling temperature (0 = greedy)' },
  'top-p': { type: 'number', default: 1, describe: 'Nucleus sampling: the most likely tokens up to this probability mass (1 = off)' },
  'max-new-tokens': { type: 'number', default: 256, describe: 'Most new tokens per response' },
  'batch-size': { type: 'number', default: 64, describe: 'Responses sampled together' },
  seed: { type: 'number', default: 0, describe: 'Sampling seed' },
  quiet: QUIET_OPTION,
  ...PLACEMENT_OPTIONS,
} as const;

/** Samples and verifies; writes the rollouts when `out` is given; prints the accuracy report. */
async function run(args: RolloutArgs): Promise<void> {
  const sampling = samplingOptions(args);
  if (args.out) await checkOutputFile('--out', args.out, { '--data': args.data, '--model': args.model }, args.overwrite ?? false);
  const records = (await loadDataset('rl', args.data)).slice(0, args.limit);
  const [tokenizer, model] = [await loadTokenizer(args.model), await loadModel(args.model, frozenModel(args))];
  try {
    const rollouts = await sampleRollouts(model, tokenizer, records, {
      ...sampling,
      onBatch: batchProgress(args.out ? 'rollout' : 'accuracy', { quiet: args.quiet }),
    });
    if (args.out) await writeJsonl(args.out, rollouts, { replace: args.overwrite ?? false });
    process.stdout.write(JSON.stringify({ ...accuracyOf(rollouts), ...(args.out && { out: args.out }) }) + '\n');
  } finally {
    model.dispose();
  }
}

/** `prefix-rl rollout`: sampled, verified responses to RL prompts, written as JSON lines. */
export const rolloutCommand: CommandModule<object, RolloutArgs> = {
  command: 'rollout',
  describe: 'Sample --samples responses per RL prompt, verify each, write them as JSON lines (the RM and RL data)',
  builder: (y) =>
    y
      .options(options)
      .option('out', { type: 'string', demandOption: true, describe: 'Rollouts file (.jsonl), written when complete' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .option('samples', { type: 'number', default: 5, describe: 'Samples per prompt' }),
  handler: run,
};

/** `prefix-rl accuracy`: avg@k of a model on RL prompts, each sample checked by its verifier. */
export const accuracyCommand: CommandModule<object, RolloutArgs> = {
  command: 'accuracy',
  describe: 'Sample responses to RL prompts (Eurus-2-RL layout) and print the verified accuracy (avg@k) as JSON',
  builder: (y) => y.options(options).option('samples', { type: 'number', default: 1, describe: 'Samples per prompt (k of avg@k)' }),
  handler: run,
};
