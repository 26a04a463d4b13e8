// Sampled accuracy (avg@k): k sampled responses per RL prompt, each checked by the verifier of its data source.
import type { RlRecord } from '../data/schemas.js';
import type { CausalLM } from '../model/index.js';
import { TASK_SOURCE } from '../task/datasets.js';
import type { AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { verify } from '../verify/verify.js';

export interface AccuracyOptions extends AsyncOptions {
  /** Samples per prompt (default 1): the score is their mean, avg@k. */
  samples?: number;
  temperature?: number;
  maxNewTokens?: number;
  /** Prompts sampled together (default 64). */
  batchSize?: number;
  seed?: number;
}

export interface AccuracyReport {
  /** Mean verdict over every sample: avg@k. */
  accuracy: number;
  prompts: number;
  samples: number;
  /** Share of prompts with both right and wrong samples (needs samples > 1 to be non-zero). */
  mixed: number;
}

/**
 * Samples `samples` responses to each record's prompt (its chat with the generation prompt) and verifies each against
 * reward_model.ground_truth: exactly for the controlled task (data_source prefix-rl/arith), as math otherwise.
 */
export async function sampledAccuracy(model: CausalLM, tokenizer: Tokenizer, records: readonly RlRecord[], options: AccuracyOptions = {}): Promise<AccuracyReport> {
  const { samples = 1, temperature = 1, maxNewTokens = 256, batchSize = 64, seed = 0, signal } = options;
  const jobs = records.flatMap((record, prompt) => Array.from({ length: samples }, () => ({ record, prompt })));
  const correct = new Array<number>(records.length).fill(0);
  let total = 0;
  for (let start = 0; start < jobs.length; start += batchSize) {
    const batch = jobs.slice(start, start + batchSize);
    const prompts = batch.map(({ record }) => tokenizer.encodeChat(record.prompt, { addGenerationPrompt: true }));
    const generations = await model.generate(prompts, { maxNewTokens, temperature, seed: seed + start, signal });
    for (const [i, generation] of generations.entries()) {
      const { record, prompt } = batch[i];
      const response = tokenizer.decode(generation.tokens, { skipSpecialTokens: true });
      const kind = record.data_source === TASK_SOURCE ? 'controlled' : 'math';
      const result = await verify({ kind, response, groundTruth: record.reward_model.ground_truth });
      if (result.status === 'pass') {
        correct[prompt] += 1;
        total += 1;
      }
    }
  }
  const mixed = correct.filter((c) => c > 0 && c < samples).length;
  return { accuracy: total / jobs.length, prompts: records.length, samples, mixed: mixed / records.length };
}
