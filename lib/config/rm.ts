// The offline reward-model stage's config (`prefix-rl rm train --config configs/rm/<name>.yaml`): the controlled-task
// probe's recipe (AdamW 1e-4, betas 0.9/0.999, no weight decay, 3 % warm-up, cosine to 0, clip 1) and the method's
// own settings.
import { z } from 'zod';
import { IPVRM_WEIGHTINGS, PAIR_STRATEGIES, RM_METHODS } from '../algorithms/reward-models/offline.js';
import { CheckpointSection, parseConfig, placementFields } from './common.js';

const positiveInt = z.int().positive();

export const RmConfigSchema = z.strictObject({
  /** ipvrm (BCE on every prefix value), implicit-prm (CE on the sequence), dpo-rm (pairs). */
  method: z.enum(RM_METHODS),
  steps: positiveInt.default(150),
  /** Pairs per step (2× as many sequences). */
  pairsPerStep: positiveInt.default(16),
  lr: z.number().positive().default(1e-4),
  /** β of the implicit reward (default: ipvrm 10, the others 0.05). */
  beta: z.number().positive().optional(),
  /** IPVRM margin m. */
  margin: z.number().min(0).default(0),
  /** IPVRM's reduction over prefixes (default token-mean, the reference's). */
  weighting: z.enum(IPVRM_WEIGHTINGS).optional(),
  /** The pair per mixed prompt: random, or the reference CLI's best-worst. */
  pairs: z.enum(PAIR_STRATEGIES).default('random'),
  maxGradNorm: z.number().positive().default(1),
  /** Seed of the pair choice and the batch order. */
  seed: z.int().min(0).default(0),
  checkpoint: CheckpointSection.default(CheckpointSection.parse({})),
  ...placementFields,
});

export type RmConfig = z.output<typeof RmConfigSchema>;

export function resolveRmConfig(input: unknown): RmConfig {
  const config = parseConfig(RmConfigSchema, input, 'RM');
  if (config.weighting !== undefined && config.method !== 'ipvrm') {
    throw new Error(`invalid RM config: weighting applies to method ipvrm only, not ${config.method}`);
  }
  return config;
}
