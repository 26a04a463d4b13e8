// Sampled accuracy (avg@k): the mean verdict of k sampled responses per RL prompt.
import type { RlRecord } from '../data/schemas.js';
import type { CausalLM } from '../model/index.js';
import { sampleRollouts, type Rollout, type RolloutOptions } from '../rl/rollouts.js';
import type { Tokenizer } from '../tokenizer/index.js';

export interface AccuracyReport {
  /** Mean verdict over every sample: avg@k. */
  accuracy: number;
  prompts: number;
  samples: number;
  /** Share of prompts with both right and wrong samples (needs samples > 1 to be non-zero). */
  mixed: number;
}

/** avg@k of rollouts (any number per prompt, grouped by prompt_index). */
export function accuracyOf(rollouts: readonly Rollout[]): AccuracyReport {
  const byPrompt = new Map<number, number[]>();
  for (const r of rollouts) byPrompt.set(r.prompt_index, [...(byPrompt.get(r.prompt_index) ?? []), r.score]);
  const mixed = [...byPrompt.values()].filter((scores) => scores.some((s) => s === 1) && scores.some((s) => s === 0)).length;
  const samples = Math.max(0, ...[...byPrompt.values()].map((scores) => scores.length));
  return {
    accuracy: rollouts.reduce((sum, r) => sum + r.score, 0) / Math.max(1, rollouts.length),
    prompts: byPrompt.size,
    samples,
    mixed: mixed / Math.max(1, byPrompt.size),
  };
}

/** Samples `samples` responses per record (see sampleRollouts) and reports avg@k. */
export async function sampledAccuracy(model: CausalLM, tokenizer: Tokenizer, records: readonly RlRecord[], options: RolloutOptions = {}): Promise<AccuracyReport> {
  return accuracyOf(await sampleRollouts(model, tokenizer, records, options));
}
