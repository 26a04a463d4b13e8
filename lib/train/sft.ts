// Supervised fine-tuning on chat records (the Eurus-2-SFT layout): the loss is the mean negative log-likelihood of the
// final assistant turn's tokens (end-of-turn tokens included) given everything before them, optimized with AdamW,
// linear warm-up to a constant rate and gradient clipping — the recipe of ../shared/reference/controlled-task-facts.md.
import { clipGradNorm, constantSchedule, padBatch, type CausalLM } from '../model/index.js';
import { Rng } from '../util/rng.js';
import { tidy, type AsyncOptions } from '../tensor/index.js';
import type { ChatTurn, Tokenizer } from '../tokenizer/index.js';
import { scoredMask, withOptimizer, type ScoredSequence } from './common.js';

/** One training sequence: the loss covers tokens[lossStart..]. */
export type SftExample = ScoredSequence;

/**
 * Tokenizes a chat whose last turn is the assistant's answer: the prompt is the chat before it rendered with the
 * generation prompt, which must be a prefix of the whole chat's tokens (true of every template that renders turns
 * in order).
 */
export function sftExample(tokenizer: Tokenizer, messages: readonly ChatTurn[]): SftExample {
  if (messages.length < 2 || messages.at(-1)!.role !== 'assistant') {
    throw new Error('an SFT chat needs at least one turn before a final assistant turn');
  }
  const tokens = tokenizer.encodeChat(messages);
  const prompt = tokenizer.encodeChat(messages.slice(0, -1), { addGenerationPrompt: true });
  if (prompt.length >= tokens.length || prompt.some((token, i) => token !== tokens[i])) {
    throw new Error('the chat template does not render the prompt as a prefix of the whole chat');
  }
  return { tokens, lossStart: prompt.length };
}

export interface SftOptions extends AsyncOptions {
  /** Optimizer steps (one batch each). */
  steps: number;
  batchSize: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Steps of linear warm-up (default 100, at most steps). */
  warmupSteps?: number;
  /** Default [0.9, 0.98]. */
  betas?: [number, number];
  /** Default 0.01. */
  weightDecay?: number;
  /** Gradient clipping norm (default 1). */
  maxGradNorm?: number;
  /** Stop early after this many minutes of training (default: no limit). */
  maxMinutes?: number;
  /** Seed of the batch order (default 0). */
  seed?: number;
  /** Called after every step. */
  onStep?: (step: SftStep) => void;
}

export interface SftStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  seconds: number;
}

/**
 * Trains every parameter of `model` on `examples`, one batch per step, and returns one record per step. Each pass over
 * the examples is shuffled, then grouped by length (see lengthGroupedBatches) so that little of a batch is padding; a
 * step with a non-finite gradient norm is skipped.
 */
export async function sft(model: CausalLM, examples: readonly SftExample[], options: SftOptions): Promise<SftStep[]> {
  const { steps, batchSize, lr = 1e-3, betas = [0.9, 0.98], weightDecay = 0.01, maxGradNorm = 1, seed = 0, signal } = options;
  if (examples.length === 0) throw new Error('sft needs at least one example');
  if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(batchSize) && batchSize > 0)) {
    throw new Error('steps and batchSize must be positive integers');
  }
  const schedule = constantSchedule(lr, { warmupSteps: Math.min(options.warmupSteps ?? 100, steps) });
  const rng = new Rng(seed);
  return withOptimizer(model, { lr, betas, weightDecay }, async (optimizer, parameters) => {
    const start = performance.now();
    const history: SftStep[] = [];
    let batches: number[][] = [];
    for (let step = 0; step < steps; step++) {
      if (options.maxMinutes !== undefined && (performance.now() - start) / 60_000 >= options.maxMinutes) break;
      if (batches.length === 0) batches = lengthGroupedBatches(examples, batchSize, rng);
      const batch = batches.pop()!.map((i) => examples[i]);
      await optimizer.zeroGrad({ signal });
      const loss = await tidy(async () => {
        const { inputIds, attentionMask } = padBatch(batch.map((e) => e.tokens));
        const logprobs = await model.tokenLogprobs(inputIds, attentionMask, { signal });
        const mask = scoredMask(batch, inputIds.shape[1]);
        const mean = logprobs.mul(mask).sum().div(mask.sum()).neg();
        await mean.backwardAsync(undefined, { signal });
        return mean.item();
      });
      const gradNorm = await clipGradNorm(parameters, maxGradNorm, { signal });
      const rate = schedule(step);
      if (Number.isFinite(gradNorm)) await optimizer.step({ lr: rate, signal });
      const record = { step, loss, lr: rate, gradNorm, seconds: (performance.now() - start) / 1000 };
      history.push(record);
      options.onStep?.(record);
    }
    return history;
  });
}

/**
 * One pass over the examples in batches of `batchSize` (the last may be smaller): shuffled, cut into pools of 32
 * batches, each pool sorted by length and cut into batches, and the batches shuffled — random batches of similar
 * lengths, as the controlled-task recipe's one-depth batches.
 */
export function lengthGroupedBatches(examples: readonly SftExample[], batchSize: number, rng: Rng): number[][] {
  const order = rng.permutation(examples.length);
  const batches: number[][] = [];
  const pool = batchSize * 32;
  for (let start = 0; start < order.length; start += pool) {
    const sorted = order.slice(start, start + pool).sort((a, b) => examples[a].tokens.length - examples[b].tokens.length);
    for (let i = 0; i < sorted.length; i += batchSize) batches.push(sorted.slice(i, i + batchSize));
  }
  return rng.permutation(batches.length).map((i) => batches[i]);
}
