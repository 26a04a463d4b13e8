import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { CommandModule } from 'yargs';
import { z } from 'zod';
import { loadModel, type CausalLM, type ModelDType } from '../../model/causal-lm.js';
import { padBatch } from '../../model/batch.js';
import { tidy } from '../../tensor/scope.js';
import type { DeviceName } from '../../tensor/tensor.js';

const MODEL_DTYPES: readonly ModelDType[] = ['float32', 'bfloat16', 'float16', 'float64'];

const InputLineSchema = z.looseObject({
  input_ids: z.array(z.number().int().nonnegative()).min(1, 'needs at least one token'),
});

/**
 * Reads JSON lines {"input_ids": [...]} from `input` and writes one line {"logprobs": [...]} per input, in order:
 * the log-prob of each token after the first given its prefix. Blank lines are skipped; a malformed line throws an
 * error naming its line number. Lines are scored `batchSize` at a time (padding never changes the result).
 */
export async function writeLogprobs(model: CausalLM, input: Readable, write: (line: string) => void, batchSize = 8): Promise<void> {
  let batch: number[][] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const sequences = batch;
    batch = [];
    const rows = await tidy(async () => {
      const { inputIds, attentionMask } = padBatch(sequences);
      const logprobs = await model.tokenLogprobs(inputIds, attentionMask);
      const flat = (await logprobs.data()) as Float32Array;
      const width = logprobs.shape[1];
      return sequences.map((tokens, row) => Array.from(flat.subarray(row * width, row * width + tokens.length - 1)));
    });
    for (const logprobs of rows) write(JSON.stringify({ logprobs }) + '\n');
  };

  let lineNumber = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    lineNumber += 1;
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      throw new Error(`stdin:${lineNumber}: not JSON (${(err as Error).message})`);
    }
    const result = InputLineSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new Error(`stdin:${lineNumber}: ${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
    }
    const tokens = result.data.input_ids;
    const outOfRange = tokens.find((token) => token >= model.config.vocabSize);
    if (outOfRange !== undefined) throw new Error(`stdin:${lineNumber}: token ${outOfRange} is outside the vocabulary (size ${model.config.vocabSize})`);
    batch.push(tokens);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
}

interface LogprobsArgs {
  model: string;
  dtype: ModelDType;
  device: string;
  'batch-size': number;
}

/** `prefix-rl logprobs`: per-token log-probs of token sequences under a checkpoint. */
export const logprobsCommand: CommandModule<object, LogprobsArgs> = {
  command: 'logprobs',
  describe: 'Read JSON lines {"input_ids": [...]} on stdin; print {"logprobs": [...]} per line (each token after the first, given its prefix)',
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Hugging Face checkpoint folder (Qwen3 or Llama, safetensors)' })
      .option('dtype', { choices: MODEL_DTYPES, default: 'float32' as ModelDType, describe: 'Parameter dtype' })
      .option('device', { type: 'string', default: 'cpu', describe: 'cpu, cuda or cuda:N' })
      .option('batch-size', { type: 'number', default: 8, describe: 'Lines scored together' })
      .check((args) => {
        if (!Number.isInteger(args['batch-size']) || args['batch-size'] < 1) throw new Error('--batch-size must be a positive integer');
        return true;
      }),
  handler: async (args) => {
    const model = await loadModel(args.model, { dtype: args.dtype, device: args.device as DeviceName });
    try {
      await writeLogprobs(model, process.stdin, (line) => process.stdout.write(line), args['batch-size']);
    } finally {
      model.dispose();
    }
  },
};
