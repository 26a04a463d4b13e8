// Offline training of implicit reward models on outcome-labelled rollouts: π_φ starts from the policy checkpoint and
// π_ref is that checkpoint frozen (its log-probs are computed once). As in the paper and the controlled-task probe,
// each prompt with mixed outcomes gives one (correct, incorrect) pair — drawn at random, or the reference CLI's
// best_worst; the pointwise methods train on the pairs' members with their outcome labels, DPO-RM on the pairs.
import {
  IPVRM_WEIGHTINGS,
  RM_METHODS,
  PAIR_STRATEGIES,
  type IpvrmWeightingName,
  type PairStrategy,
  type RmMethod,
} from '../algorithms/reward-models/offline.js';
import type { CausalLM } from '../model/causal-lm.js';
import { padBatch } from '../model/batch.js';
import { cosineSchedule, type LrSchedule } from '../model/optim.js';
import { dpoRm, implicitPrmCe, ipvrmOffline } from '../ops/objectives.js';
import { groupByPrompt, type Rollout } from '../rollout/rollouts.js';
import { Rng } from '../util/rng.js';
import { Tensor, type AsyncOptions, type DeviceName } from '../tensor/index.js';
export { IPVRM_WEIGHTINGS, PAIR_STRATEGIES, RM_METHODS, type IpvrmWeightingName, type PairStrategy, type RmMethod };
import type { ProcessGroup } from '../distributed/group.js';
import { runToEnd, scoredMask, scoredTokens, splitContiguous, stateField, Trainee, type ScoredSequence, type TrainingSession } from './common.js';

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
 * `random` draws both members, and so needs pass/fail scores (0 or 1: a fractional score is refused, naming its
 * rollout, rather than counted as a failure); `best-worst` takes the highest- and the lowest-scored response (the
 * first in sampling order among ties), as the reference CLI's best_worst, with any score in [0, 1] (the pointwise
 * methods then read a fractional score as a soft label).
 */
export function outcomePairs(rollouts: readonly Rollout[], seed = 0, strategy: PairStrategy = 'random'): RmPair[] {
  if (!(PAIR_STRATEGIES as readonly string[]).includes(strategy))
    throw new Error(`pair strategy must be one of ${PAIR_STRATEGIES.join(', ')}, got '${strategy}'`);
  const allowed = strategy === 'random' ? (score: number) => score === 0 || score === 1 : (score: number) => score >= 0 && score <= 1;
  const bad = rollouts.find((r) => !allowed(r.score));
  if (bad) {
    throw new RangeError(
      `the rollout of prompt ${bad.prompt_index}, sample ${bad.sample_index} has score ${bad.score}: ${strategy} pairs need ` +
        (strategy === 'random' ? 'pass/fail scores (0 or 1); use pairs: best-worst to rank graded scores' : 'scores in [0, 1]'),
    );
  }
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
  /** π_φ's log-probs through the fused LM head (default true; false: from the logits). */
  fusedHead?: boolean;
  onStep?: (step: RmStep) => void;
  /** Data-parallel: the ranks share each step's pairs (see Trainee); every rank gets the same pairs. */
  group?: ProcessGroup;
}

export interface RmStep {
  step: number;
  loss: number;
  /** Share of the step's pairs whose chosen sequence scores above the rejected one (final v̄, z or reward). */
  pairAccuracy: number;
  lr: number;
  gradNorm: number;
  /** Tokens in the step's sequences (no padding). */
  tokens: number;
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
 * Offline reward-model training one step at a time: `model` (π_φ, initialised from the policy) on `pairs`, whose
 * sequences already hold the reference's log-probs; each step takes the next `pairsPerStep` pairs of shuffled passes.
 * A step with a non-finite gradient norm is skipped.
 */
export class RmSession implements TrainingSession<RmStep> {
  readonly totalSteps: number;
  readonly trainees: Readonly<Record<string, Trainee>>;
  private readonly trainee: Trainee;
  private readonly schedule: LrSchedule;
  private readonly rng: Rng;
  private readonly beta: number;
  private readonly weighting: IpvrmWeightingName;
  private readonly start = performance.now();
  private order: number[] = [];
  private done = 0;

  constructor(
    model: CausalLM,
    private readonly pairs: readonly RmPair[],
    private readonly options: Omit<RmTrainOptions, 'onStep'>,
  ) {
    const { method, steps, pairsPerStep = 16, lr = 1e-4, seed = 0 } = options;
    if (!(RM_METHODS as readonly string[]).includes(method)) throw new Error(`method must be one of ${RM_METHODS.join(', ')}, got '${method}'`);
    if (pairs.length === 0) throw new Error('no pairs: reward-model training needs prompts with both right and wrong rollouts');
    if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(pairsPerStep) && pairsPerStep > 0)) {
      throw new Error('steps and pairsPerStep must be positive integers');
    }
    if (pairs.some((p) => !p.chosen.refLogprobs || !p.rejected.refLogprobs)) throw new Error('compute referenceLogprobs first');
    this.weighting = options.weighting ?? 'token-mean';
    if (!(this.weighting in NATIVE_WEIGHTING)) throw new Error(`weighting must be one of ${IPVRM_WEIGHTINGS.join(', ')}, got '${this.weighting}'`);
    if (options.weighting !== undefined && method !== 'ipvrm')
      throw new Error(`weighting applies to ipvrm only (${method} has one loss per sequence)`);
    this.beta = options.beta ?? (method === 'ipvrm' ? 10 : 0.05);
    this.totalSteps = steps;
    this.schedule = cosineSchedule(lr, { warmupSteps: Math.ceil(0.03 * steps), totalSteps: steps });
    this.rng = new Rng(seed);
    this.trainee = new Trainee(model, { lr, betas: [0.9, 0.999], weightDecay: 0 }, options.group);
    this.trainees = { model: this.trainee };
  }

  get stepsDone(): number {
    return this.done;
  }

  async next(): Promise<RmStep> {
    const { method, pairsPerStep = 16, margin = 0, signal } = this.options;
    const { model } = this.trainee;
    const { pairs, beta } = this;
    if (this.order.length < pairsPerStep) this.order = this.order.concat(this.rng.permutation(pairs.length));
    const batch = this.order.splice(0, Math.min(pairsPerStep, pairs.length)).map((i) => pairs[i]);
    // Rows [0, P) chosen, [P, 2P) rejected: DPO-RM's layout, and as good as any for the pointwise losses.
    const rows = (part: readonly RmPair[]) => [...part.map((p) => p.chosen), ...part.map((p) => p.rejected)];
    const sequences = rows(batch);
    const lr = this.schedule(this.done);
    // Each rank's pairs: its loss (a mean over its tokens for token-mean IPVRM, over its sequences otherwise) is
    // weighted by its share of the step's, so the sum over ranks is the loss of the whole step.
    const { group } = this.trainee;
    const tokenMean = method === 'ipvrm' && this.weighting === 'token-mean';
    const stepCount = tokenMean ? scoredTokens(sequences) : batch.length;
    const parts = splitContiguous(batch, group.worldSize);
    const { gradNorm, outputs } = await this.trainee.step(parts, { lr, maxGradNorm: this.options.maxGradNorm ?? 1, signal }, async (part) => {
      const micro = rows(part);
      const weight = (tokenMean ? scoredTokens(micro) : part.length) / stepCount;
      const inputs = await rmInputs(model, micro, this.options.fusedHead, signal);
      let loss: Tensor;
      let scores: Tensor;
      if (method === 'ipvrm') {
        const out = await ipvrmOffline(
          { ...inputs, labels: labels(micro, model.device), beta, margin, weighting: NATIVE_WEIGHTING[this.weighting] },
          { signal },
        );
        [loss, scores] = [out.loss, out.lastScores];
      } else if (method === 'implicit-prm') {
        const out = await implicitPrmCe({ ...inputs, labels: labels(micro, model.device), beta }, { signal });
        [loss, scores] = [out.loss, out.seqLogits];
      } else {
        const out = await dpoRm({ ...inputs, beta }, { signal });
        [loss, scores] = [out.loss, out.seqRewards];
      }
      const share = loss.mul(weight);
      await share.backwardAsync(undefined, { signal });
      const s = scores.toNumbers();
      return { loss: share.item(), wins: part.filter((_, i) => s[i] > s[i + part.length]).length };
    });
    const [loss, wins] = await group.allReduceNumbers([outputs.reduce((a, x) => a + x.loss, 0), outputs.reduce((a, x) => a + x.wins, 0)], 'sum', {
      signal,
    });
    const tokens = sequences.reduce((sum, x) => sum + x.tokens.length, 0);
    return { step: this.done++, loss, pairAccuracy: wins / batch.length, lr, gradNorm, tokens, seconds: (performance.now() - this.start) / 1000 };
  }

  state(): Record<string, unknown> {
    return { step: this.done, rng: this.rng.state, order: this.order };
  }

  restore(state: Record<string, unknown>): void {
    this.done = stateField<number>(state, 'step', Number.isInteger);
    this.rng.restore(stateField<number>(state, 'rng', Number.isInteger));
    this.order = stateField<number[]>(
      state,
      'order',
      (v) => Array.isArray(v) && v.every((i) => Number.isInteger(i) && i >= 0 && i < this.pairs.length),
    );
  }

  close(): Promise<void> {
    return this.trainee.close();
  }
}

/** Trains `model` on `pairs` (see RmSession) and returns one record per step. */
export async function trainRewardModel(model: CausalLM, pairs: readonly RmPair[], options: RmTrainOptions): Promise<RmStep[]> {
  return runToEnd(new RmSession(model, pairs, options), options);
}

/**
 * The implicit reward's inputs in the objectives' shifted layout (position t scores token t + 1): the log ratio
 * log π_φ − log π_ref, π_φ's side through the fused LM head (tokenLogprobs: no [B, L, V] logits, gradients to π_φ),
 * π_ref's from the cached reference log-probs (computed the same way, so the ratio is 0 up to rounding while
 * π_φ = π_ref), and the response mask.
 */
async function rmInputs(model: CausalLM, sequences: readonly RmSequence[], fusedHead?: boolean, signal?: AbortSignal) {
  const device = model.device;
  const { inputIds, attentionMask } = padBatch(
    sequences.map((s) => s.tokens),
    { device },
  );
  const [B, L] = inputIds.shape;
  const policy = await model.tokenLogprobs(inputIds, attentionMask, { fusedHead, signal });
  const ref = new Float32Array(B * (L - 1));
  sequences.forEach((s, b) => ref.set(s.refLogprobs!, b * (L - 1)));
  return { logRatio: policy.sub(Tensor.from(ref, [B, L - 1], { device })), mask: scoredMask(sequences, L, device) };
}

const labels = (sequences: readonly RmSequence[], device: DeviceName) =>
  Tensor.from(
    Float32Array.from(sequences, (s) => s.label),
    [sequences.length],
    { device },
  );
