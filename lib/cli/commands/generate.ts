import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { CommandModule } from 'yargs';
import { z } from 'zod';
import { loadModel, type CausalLM, type GenerateOptions, type ModelDType } from '../../model/causal-lm.js';
import { frozenModel } from '../run-flags.js';
import { loadTokenizer, type Tokenizer } from '../../tokenizer/index.js';
import { checkVocabulary, inBatches, jsonLines, modelOptions } from '../json-lines.js';

const InputLineSchema = z
  .looseObject({
    input_ids: z.array(z.number().int().nonnegative()).min(1, 'needs at least one token').optional(),
    prompt: z.string().min(1, 'is empty').optional(),
    messages: z
      .array(z.looseObject({ role: z.string(), content: z.string() }))
      .min(1, 'needs at least one message')
      .optional(),
  })
  .refine((line) => [line.input_ids, line.prompt, line.messages].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of input_ids, prompt or messages',
  });

export type SamplingFlags = Omit<GenerateOptions, 'signal' | 'seed'> & { seed: number };

/**
 * Reads JSON lines with one of {"input_ids": [...]}, {"prompt": "text"} or {"messages": [{role, content}, ...]}
 * (chat template with the generation prompt) and writes one line per input, in order:
 * {"tokens", "logprobs", "finish_reason"} plus "text" when there is a tokenizer (and "top_tokens"/"top_logprobs"
 * with topLogprobs). Lines are sampled `batchSize` at a time; batch i uses seed + i, so the same input and options
 * give the same output.
 */
export async function writeGenerations(
  model: CausalLM,
  tokenizer: Tokenizer | null,
  input: Readable,
  write: (line: string) => void,
  options: SamplingFlags,
  batchSize = 8,
): Promise<void> {
  async function* prompts() {
    for await (const { value: line, fail } of jsonLines(input, InputLineSchema)) {
      if (!line.input_ids && !tokenizer) fail('prompt and messages need a tokenizer.json in the model folder; give input_ids');
      const tokens =
        line.input_ids ?? (line.messages ? tokenizer!.encodeChat(line.messages, { addGenerationPrompt: true }) : tokenizer!.encode(line.prompt!));
      checkVocabulary(tokens, model.config.vocabSize, fail);
      yield tokens;
    }
  }
  let batchIndex = 0;
  for await (const batch of inBatches(prompts(), batchSize)) {
    const generations = await model.generate(batch, { ...options, seed: options.seed + batchIndex++ });
    for (const g of generations) {
      const line: Record<string, unknown> = { tokens: g.tokens, logprobs: g.logprobs, finish_reason: g.finishReason };
      if (tokenizer) line.text = tokenizer.decode(g.tokens, { skipSpecialTokens: true });
      if (g.topTokens) Object.assign(line, { top_tokens: g.topTokens, top_logprobs: g.topLogprobs });
      write(JSON.stringify(line) + '\n');
    }
  }
}

interface GenerateArgs {
  model: string;
  dtype: ModelDType;
  device: string;
  'batch-size': number;
  'max-new-tokens': number;
  temperature: number;
  'top-k': number;
  'top-p': number;
  seed: number;
  'top-logprobs': number;
  'eos-token-id'?: number[];
  stop?: string[];
}

/** `prefix-rl generate`: sampled continuations of prompts, with per-token log-probs. */
export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'Read JSON lines {"input_ids"|"prompt"|"messages"} on stdin; print {"tokens", "logprobs", "finish_reason", "text"} per line',
  builder: (y) =>
    y
      .options(modelOptions)
      .option('batch-size', { type: 'number', default: 8, describe: 'Prompts sampled together' })
      .option('max-new-tokens', { type: 'number', default: 256, describe: 'Most new tokens per prompt' })
      .option('temperature', { type: 'number', default: 1, describe: '0 = greedy' })
      .option('top-k', { type: 'number', default: 0, describe: '0 = off' })
      .option('top-p', { type: 'number', default: 1, describe: '1 = off' })
      .option('seed', { type: 'number', default: 0, describe: 'Batch i samples with seed + i' })
      .option('top-logprobs', { type: 'number', default: 0, describe: 'Also print the K most likely tokens per step' })
      .option('eos-token-id', {
        type: 'number',
        array: true,
        describe: 'Tokens that end a row (repeatable; default: the eos_token_id of config.json and generation_config.json)',
      })
      .option('stop', { type: 'string', array: true, describe: 'Text that ends a row once generated (repeatable; encoded with the tokenizer)' })
      .check((args) => {
        if (args['eos-token-id']?.some((id) => !Number.isInteger(id) || id < 0)) throw new Error('--eos-token-id takes token ids');
        if (args.stop?.some((text) => text === '')) throw new Error('--stop must not be empty');
        return true;
      }),
  handler: async (args) => {
    const model = await loadModel(args.model, frozenModel(args));
    try {
      const tokenizer = existsSync(join(args.model, 'tokenizer.json')) ? await loadTokenizer(args.model) : null;
      if (args.stop && !tokenizer) throw new Error('--stop needs a tokenizer.json in the model folder');
      const options: SamplingFlags = {
        ...(args['eos-token-id'] && { eosTokenIds: args['eos-token-id'] }),
        ...(args.stop && { stopSequences: args.stop.map((text) => tokenizer!.encode(text, { addSpecialTokens: false })) }),
        maxNewTokens: args['max-new-tokens'],
        temperature: args.temperature,
        topK: args['top-k'],
        topP: args['top-p'],
        seed: args.seed,
        topLogprobs: args['top-logprobs'],
      };
      await writeGenerations(model, tokenizer, process.stdin, (line) => process.stdout.write(line), options, args['batch-size']);
    } finally {
      model.dispose();
    }
  },
};
