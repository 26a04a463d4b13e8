import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { loadDataset } from '../../data/records.js';
import { initModel, loadModel, type CausalLM } from '../../model/index.js';
import { loadTokenizer } from '../../tokenizer/index.js';
import { sft, sftExample } from '../../train/sft.js';

interface SftArgs {
  data: string;
  model?: string;
  'init-config'?: string;
  tokenizer?: string;
  out: string;
  steps: number;
  'batch-size': number;
  lr: number;
  warmup: number;
  'max-minutes'?: number;
  seed: number;
  'log-every': number;
}

/** `prefix-rl sft`: supervised fine-tuning on chat records, from a checkpoint or from scratch. */
export const sftCommand: CommandModule<object, SftArgs> = {
  command: 'sft',
  describe: 'Fine-tune on chat records (Eurus-2-SFT layout, JSONL or Parquet): loss on the final assistant turn',
  builder: (y) =>
    y
      .option('data', { type: 'string', demandOption: true, describe: 'SFT records ({"messages": [...]} per row)' })
      .option('model', { type: 'string', describe: 'Checkpoint folder to start from' })
      .option('init-config', { type: 'string', describe: 'Or: a config.json to start from random weights (needs --tokenizer)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer folder (default: --model)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for the trained checkpoint' })
      .option('steps', { type: 'number', default: 400, describe: 'Optimizer steps' })
      .option('batch-size', { type: 'number', default: 64, describe: 'Sequences per step' })
      .option('lr', { type: 'number', default: 1e-3, describe: 'Peak learning rate (AdamW, betas 0.9/0.98, weight decay 0.01)' })
      .option('warmup', { type: 'number', default: 100, describe: 'Linear warm-up steps' })
      .option('max-minutes', { type: 'number', describe: 'Stop after this much training time' })
      .option('seed', { type: 'number', default: 0, describe: 'Seed of the batch order and of --init-config weights' })
      .option('log-every', { type: 'number', default: 20, describe: 'Print a progress line to stderr every N steps' })
      .check((args) => {
        if (!args.model === !args['init-config']) throw new Error('give exactly one of --model or --init-config');
        if (args['init-config'] && !args.tokenizer) throw new Error('--init-config needs --tokenizer');
        return true;
      }),
  handler: async (args) => {
    const tokenizer = await loadTokenizer(args.tokenizer ?? args.model!);
    const records = await loadDataset('sft', args.data);
    const examples = records.map((record, i) => {
      try {
        return sftExample(tokenizer, record.messages);
      } catch (err) {
        throw new Error(`${args.data}: row ${i + 1}: ${(err as Error).message}`);
      }
    });
    const model: CausalLM = args.model
      ? await loadModel(args.model)
      : await initModel(JSON.parse(await readFile(args['init-config']!, 'utf8')), { seed: args.seed, tokenizerFrom: args.tokenizer });
    try {
      const history = await sft(model, examples, {
        steps: args.steps,
        batchSize: args['batch-size'],
        lr: args.lr,
        warmupSteps: args.warmup,
        maxMinutes: args['max-minutes'],
        seed: args.seed,
        onStep: (s) => {
          if ((s.step + 1) % args['log-every'] === 0) {
            process.stderr.write(
              `step ${s.step + 1}: loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} grad-norm ${s.gradNorm.toFixed(3)} ${s.seconds.toFixed(0)} s\n`,
            );
          }
        },
      });
      await model.save(args.out);
      const last = history.at(-1)!;
      process.stdout.write(
        JSON.stringify({ out: args.out, steps: history.length, examples: examples.length, loss: last.loss, seconds: last.seconds }) + '\n',
      );
    } finally {
      model.dispose();
    }
  },
};
