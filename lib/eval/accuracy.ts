// Sampled accuracy (avg@k): the mean verdict of k sampled responses per RL prompt.
import type { RlRecord } from '../data/schemas.js';
import type { CausalLM } from '../model/index.js';
import { groupByPrompt, sampleRollouts, type Rollout, type RolloutOptions } from '../rollout/rollouts.js';
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
  const groups = groupByPrompt(rollouts);
  const mixed = groups.filter((group) => group.some((r) => r.score === 1) && group.some((r) => r.score === 0)).length;
  return {
    accuracy: rollouts.reduce((sum, r) => sum + r.score, 0) / Math.max(1, rollouts.length),
    prompts: groups.length,
    samples: Math.max(0, ...groups.map((group) => group.length)),
    mixed: mixed / Math.max(1, groups.length),
  };
}

/** Samples `samples` responses per record (see sampleRollouts) and reports avg@k. */
export async function sampledAccuracy(
  model: CausalLM,
  tokenizer: Tokenizer,
  records: readonly RlRecord[],
  options: RolloutOptions = {},
): Promise<AccuracyReport> {
  return accuracyOf(await sampleRollouts(model, tokenizer, records, options));
}
