// The SFT stage's config (`prefix-rl sft --config configs/sft/<name>.yaml`): the optimizer recipe of
// controlled-task-facts.md (AdamW 1e-3, betas 0.9/0.98, weight decay 0.01, 100 warm-up steps, clip 1), with a rate
// that decays to minLr by the last step.
import { z } from 'zod';
import { LR_SCHEDULES } from '../model/optim.js';
import { CheckpointSection, parseConfig, placementFields } from './common.js';

const positiveInt = z.int().positive();

export const SftConfigSchema = z.strictObject({
  /** Optimizer steps, one batch each. */
  steps: positiveInt.default(400),
  batchSize: positiveInt.default(64),
  /** Peak learning rate. */
  lr: z.number().positive().default(1e-3),
  warmupSteps: z.int().min(0).default(100),
  /** After the warm-up: cosine or linear decay to minLr at the last step, or constant. */
  schedule: z.enum(LR_SCHEDULES).default('cosine'),
  minLr: z.number().min(0).default(0),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.98]),
  weightDecay: z.number().min(0).default(0.01),
  maxGradNorm: z.number().positive().default(1),
  /** Seed of the batch order (and of the weights of a model initialised from a config). */
  seed: z.int().min(0).default(0),
  /** Stop after this many minutes of training (the run then ends as if it had reached `steps`). */
  maxMinutes: z.number().positive().optional(),
  checkpoint: CheckpointSection.default(CheckpointSection.parse({})),
  ...placementFields,
});

export type SftConfig = z.output<typeof SftConfigSchema>;

export function resolveSftConfig(input: unknown): SftConfig {
  return parseConfig(SftConfigSchema, input, 'SFT');
}
