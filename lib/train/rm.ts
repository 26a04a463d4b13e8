// Offline training of implicit reward models on outcome-labelled rollouts: π_φ starts from the policy checkpoint and
// π_ref is that checkpoint frozen (its log-probs are computed once). As in the paper and the controlled-task probe,
// each prompt with mixed outcomes gives one (correct, incorrect) pair — drawn at random, or the reference CLI's
// best_worst; the pointwise methods train on the pairs' members with their outcome labels, DPO-RM on the pairs.
import type { CausalLM } from '../model/causal-lm.js';
import { padBatch } from '../model/batch.js';
import { clipGradNorm, cosineSchedule } from '../model/optim.js';
import { dpoRm, implicitPrmCe, ipvrmOffline } from '../ops/objectives.js';
import { groupByPrompt, type Rollout } from '../rollout/rollouts.js';
import { Rng } from '../util/rng.js';
import { Tensor, tidy, type AsyncOptions } from '../tensor/index.js';
import { scoredMask, withOptimizer, type ScoredSequence } from './common.js';

export const RM_METHODS = ['ipvrm', 'implicit-prm', 'dpo-rm'] as const;
export type RmMethod = (typeof RM_METHODS)[number];

/** How each mixed prompt's pair is chosen: a random correct and a random incorrect response, or the reference CLI's best_worst. */
export const PAIR_STRATEGIES = ['random', 'best-worst'] as const;
export type PairStrategy = (typeof PAIR_STRATEGIES)[number];

/**
 * IPVRM's reduction over prefixes: the reference's token mean over the batch; its effective per-sequence mean (the
 * README trains at micro-batch 1, where the token mean is each sequence's mean: the same as the paper's eq. 9,
 * `uniform`); the paper's early (eq. 17) and late (eq. 18) weightings.
 */
export const IPVRM_WEIGHTINGS = ['token-mean', 'sequence-mean', 'uniform', 'early', 'late'] as const;
export type IpvrmWeightingName = (typeof IPVRM_WEIGHTINGS)[number];
const NATIVE_WEIGHTING = { 'token-mean': 'token_mean', 'sequence-mean': 'uniform', uniform: 'uniform', early: 'early', late: 'late' } as const;

/** A labelled sequence: prompt + response tokens, scored from the response on (lossStart = prompt length). */
export interface RmSequence extends ScoredSequence {
  label: number;
  /** log π_ref of tokens[1..], filled by referenceLogprobs. */
  refLogprobs?: number[];
}

export interface RmPair {
  chosen: RmSequence;
  rejected: RmSequence;
}

/**
 * One (correct, incorrect) pair per prompt with mixed outcomes (a score of 1 is correct), prompts in input order:
 * `random` draws both members; `best-worst` takes the highest- and the lowest-scored response (the first in sampling
 * order among ties), as the reference CLI's best_worst.
 */
export function outcomePairs(rollouts: readonly Rollout[], seed = 0, strategy: PairStrategy = 'random'): RmPair[] {
  if (!(PAIR_STRATEGIES as readonly string[]).includes(strategy))
    throw new Error(`pair strategy must be one of ${PAIR_STRATEGIES.join(', ')}, got '${strategy}'`);
  const rng = new Rng(seed);
  const sequence = (r: Rollout): RmSequence => ({ tokens: [...r.prompt_ids, ...r.response_ids], lossStart: r.prompt_ids.length, label: r.score });
  const first = (group: readonly Rollout[], better: (a: number, b: number) => boolean) =>
    group.reduce((best, r) => (better(r.score, best.score) ? r : best));
  const pairs: RmPair[] = [];
  for (const group of groupByPrompt(rollouts)) {
    const right = group.filter((r) => r.score === 1);
    const wrong = group.filter((r) => r.score !== 1);
    if (right.length === 0 || wrong.length === 0) continue;
    pairs.push(
      strategy === 'random'
        ? { chosen: sequence(rng.pick(right)), rejected: sequence(rng.pick(wrong)) }
        : { chosen: sequence(first(group, (a, b) => a > b)), rejected: sequence(first(group, (a, b) => a < b)) },
    );
  }
  return pairs;
}

export interface RmTrainOptions extends AsyncOptions {
  method: RmMethod;
  /** Optimizer steps; each takes `pairsPerStep` pairs (2 × that many sequences). */
  steps: number;
  pairsPerStep?: number;
  /** Peak rate of AdamW (betas 0.9/0.999, no weight decay), 3 % warm-up then cosine to 0 (default 1e-4). */
  lr?: number;
  /** β of the implicit reward (defaults: IPVRM 10, Implicit PRM and DPO-RM 0.05, as the probe and the paper). */
  beta?: number;
  /** IPVRM margin m (default 0, the released code's default). */
  margin?: number;
  /** IPVRM's reduction over prefixes (default token-mean, the reference's); the other methods have none. */
  weighting?: IpvrmWeightingName;
  maxGradNorm?: number;
  seed?: number;
  onStep?: (step: RmStep) => void;
}

export interface RmStep {
  step: number;
  loss: number;
  /** Share of the step's pairs whose chosen sequence scores above the rejected one (final v̄, z or reward). */
  pairAccuracy: number;
  lr: number;
  seconds: number;
}

/** Fills each sequence's refLogprobs with the frozen reference's log-probs (batches of `batchSize`). */
export async function referenceLogprobs(reference: CausalLM, sequences: RmSequence[], batchSize = 32, options: AsyncOptions = {}): Promise<void> {
  const logprobs = await reference.sequenceLogprobs(
    sequences.map((s) => s.tokens),
    { batchSize, signal: options.signal },
  );
  sequences.forEach((s, i) => (s.refLogprobs = logprobs[i]));
}

/**
 * Trains `model` (π_φ, initialised from the policy) on `pairs`, whose sequences already hold the reference's
 * log-probs. Returns one record per step; a step with a non-finite gradient norm is skipped.
 */
export async function trainRewardModel(model: CausalLM, pairs: readonly RmPair[], options: RmTrainOptions): Promise<RmStep[]> {
  const { method, steps, pairsPerStep = 16, lr = 1e-4, maxGradNorm = 1, seed = 0, signal } = options;
  if (pairs.length === 0) throw new Error('no pairs: reward-model training needs prompts with both right and wrong rollouts');
  if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(pairsPerStep) && pairsPerStep > 0)) {
    throw new Error('steps and pairsPerStep must be positive integers');
  }
  if (pairs.some((p) => !p.chosen.refLogprobs || !p.rejected.refLogprobs)) throw new Error('compute referenceLogprobs first');
  const { weighting = 'token-mean' } = options;
  if (!(weighting in NATIVE_WEIGHTING)) throw new Error(`weighting must be one of ${IPVRM_WEIGHTINGS.join(', ')}, got '${weighting}'`);
  if (options.weighting !== undefined && method !== 'ipvrm') throw new Error(`weighting applies to ipvrm only (${method} has one loss per sequence)`);
  const beta = options.beta ?? (method === 'ipvrm' ? 10 : 0.05);
  const schedule = cosineSchedule(lr, { warmupSteps: Math.ceil(0.03 * steps), totalSteps: steps });
  const rng = new Rng(seed);
  return withOptimizer(model, { lr, betas: [0.9, 0.999], weightDecay: 0 }, async (optimizer, parameters) => {
    const start = performance.now();
    const history: RmStep[] = [];
    let order: number[] = [];
    for (let step = 0; step < steps; step++) {
      if (order.length < pairsPerStep) order = order.concat(rng.permutation(pairs.length));
      const batch = order.splice(0, Math.min(pairsPerStep, pairs.length)).map((i) => pairs[i]);
      // Rows [0, P) chosen, [P, 2P) rejected: DPO-RM's layout, and as good as any for the pointwise losses.
      const sequences = [...batch.map((p) => p.chosen), ...batch.map((p) => p.rejected)];
      await optimizer.zeroGrad({ signal });
      const { loss, pairAccuracy } = await tidy(async () => {
        const inputs = await rmInputs(model, sequences, signal);
        let loss: Tensor;
        let scores: Tensor;
        if (method === 'ipvrm') {
          const out = await ipvrmOffline(
            { ...inputs, labels: labels(sequences), beta, margin: options.margin ?? 0, weighting: NATIVE_WEIGHTING[weighting] },
            { signal },
          );
          [loss, scores] = [out.loss, out.lastScores];
        } else if (method === 'implicit-prm') {
          const out = await implicitPrmCe({ ...inputs, labels: labels(sequences), beta }, { signal });
          [loss, scores] = [out.loss, out.seqLogits];
        } else {
          const out = await dpoRm({ ...inputs, beta }, { signal });
          [loss, scores] = [out.loss, out.seqRewards];
        }
        await loss.backwardAsync(undefined, { signal });
        const s = scores.toNumbers();
        const wins = batch.filter((_, i) => s[i] > s[i + batch.length]).length;
        return { loss: loss.item(), pairAccuracy: wins / batch.length };
      });
      const gradNorm = await clipGradNorm(parameters, maxGradNorm, { signal });
      const rate = schedule(step);
      if (Number.isFinite(gradNorm)) await optimizer.step({ lr: rate, signal });
      const record = { step, loss, pairAccuracy, lr: rate, seconds: (performance.now() - start) / 1000 };
      history.push(record);
      options.onStep?.(record);
    }
    return history;
  });
}

/** π_φ's logits in the objectives' shifted layout (logits[b, t] predicts tokens[b, t] = input t + 1), the reference's log-probs, the response mask. */
async function rmInputs(model: CausalLM, sequences: readonly RmSequence[], signal?: AbortSignal) {
  const { inputIds, attentionMask } = padBatch(sequences.map((s) => s.tokens));
  const [B, L] = inputIds.shape;
  const logits = (await model.forward(inputIds, attentionMask, { signal })).slice(1, 0, L - 1);
  const tokens = inputIds.slice(1, 1, L);
  const ref = new Float32Array(B * (L - 1));
  sequences.forEach((s, b) => ref.set(s.refLogprobs!, b * (L - 1)));
  return { logits, tokens, refLogprobs: Tensor.from(ref, [B, L - 1]), mask: scoredMask(sequences, L) };
}

const labels = (sequences: readonly RmSequence[]) =>
  Tensor.from(
    Float32Array.from(sequences, (s) => s.label),
    [sequences.length],
  );
