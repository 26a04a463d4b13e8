import type { Readable } from 'node:stream';
import type { CommandModule } from 'yargs';
import { z } from 'zod';
import { loadModel, type CausalLM, type ModelDType } from '../../model/causal-lm.js';
import { padBatch } from '../../model/batch.js';
import { tidy } from '../../tensor/scope.js';
import { frozenModel } from '../run-flags.js';
import { checkVocabulary, inBatches, jsonLines, modelOptions } from '../json-lines.js';

const InputLineSchema = z.looseObject({
  input_ids: z.array(z.number().int().nonnegative()).min(1, 'needs at least one token'),
});

/**
 * Reads JSON lines {"input_ids": [...]} from `input` and writes one line {"logprobs": [...]} per input, in order:
 * the log-prob of each token after the first given its prefix. Blank lines are skipped; a malformed line throws an
 * error naming its line number. Lines are scored `batchSize` at a time (padding never changes the result).
 */
export async function writeLogprobs(model: CausalLM, input: Readable, write: (line: string) => void, batchSize = 8): Promise<void> {
  async function* sequences() {
    for await (const { value, fail } of jsonLines(input, InputLineSchema)) {
      checkVocabulary(value.input_ids, model.config.vocabSize, fail);
      yield { tokens: value.input_ids, fail };
    }
  }
  for await (const batch of inBatches(sequences(), batchSize)) {
    const rows = await tidy(async () => {
      const { inputIds, attentionMask } = padBatch(batch.map((line) => line.tokens));
      const logprobs = await model.tokenLogprobs(inputIds, attentionMask);
      const flat = (await logprobs.data()) as Float32Array;
      const width = logprobs.shape[1];
      return batch.map(({ tokens }, row) => Array.from(flat.subarray(row * width, row * width + tokens.length - 1)));
    });
    rows.forEach((logprobs, i) => {
      // JSON has no NaN or infinity (they would print as null): an overflow in a reduced dtype is an error.
      if (!logprobs.every(Number.isFinite)) batch[i].fail('the log-probs are not finite (NaN or ±infinity: an overflow in this dtype?)');
    });
    for (const logprobs of rows) write(JSON.stringify({ logprobs }) + '\n');
  }
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
  builder: (y) => y.options(modelOptions).option('batch-size', { type: 'number', default: 8, describe: 'Lines scored together' }),
  handler: async (args) => {
    const model = await loadModel(args.model, frozenModel(args));
    try {
      await writeLogprobs(model, process.stdin, (line) => process.stdout.write(line), args['batch-size']);
    } finally {
      model.dispose();
    }
  },
};
