// The RL loop: sample n responses per prompt, verify them, update the implicit reward model online, turn outcomes
// and implicit rewards into advantages, and take PPO steps on the policy. One loop serves every algorithm: the config
// names a reward model, an advantage estimator and policy losses, each looked up in its registry (lib/algorithms), and
// the presets of lib/config/presets.ts combine them (implemented-math.md §1b, §2c, §3). For example:
//   grpo          no reward model; GRPO outcome advantages; Tok-PPO.
//   prime         an implicit PRM trained online with CE; token rewards β·(log π_φ − log π_ref) and the outcome
//                 through RLOO; Tok-PPO with a symmetric clip.
//   grpo-ipvrm    online IPVRM (ADB, DLW, π_ref = π_old); A = GRPO + 0.05·whitened GAE over its TD; Tok-PPO.
//   distrl-ipvrm  grpo-ipvrm plus 0.1·Dist-PPO over π_old's candidates with advantages β·(log π_φ − log π_old)/σ_V.
// Batch layout (verl's): prompts left-padded to P, responses right-padded to R; every per-token tensor is [B, R].
import { getAdvantage, type AdvantageInput, type AdvantageOutput } from '../algorithms/advantages/index.js';
import { getPolicyLoss } from '../algorithms/policy-losses/index.js';
import { getRewardModel, type RewardModel, type RewardScoreInput } from '../algorithms/reward-models/index.js';
import { VerifierPool } from '../verify/pool.js';
import { evalRolloutOptions, MIXED_ACCURACY_BOUNDS, type RlConfig } from '../config/rl.js';
import type { RlRecord } from '../data/schemas.js';
import type { CausalLM } from '../model/causal-lm.js';
import { clipGradNorm, type AdamW } from '../model/optim.js';
import { distrlCandidates, distrlLoss, tokenEntropy, tokenLogprobs } from '../ops/objectives.js';
import { deriveSeed, Rng } from '../util/rng.js';
import { Tensor, tidy, type AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { withOptimizer } from './common.js';
import { sampledAccuracy } from '../eval/accuracy.js';
import type { Matrix } from '../algorithms/masked.js';
import { groupByPrompt, sampleRollouts, type Rollout } from '../rollout/rollouts.js';

export interface RlModels {
  /** π_θ, trained. */
  policy: CausalLM;
  /** π_φ, the implicit reward model, trained online (every algorithm but grpo). */
  rewardModel?: CausalLM;
  /** The frozen π_ref of the implicit reward when rewardModel.reference is 'frozen' (PRIME's default). */
  reference?: CausalLM;
}

export interface RlRunOptions extends AsyncOptions {
  /**
   * Scores each rollout instead of the verifier (e.g. a custom reward): a finite number, in [0, 1] for the
   * algorithms with a reward model (its labels, ADB's μ and the mixed-group filter read it as a probability).
   * Held-out evaluation still verifies.
   */
  reward?: (rollout: Omit<Rollout, 'score'>) => number;
  /** Held-out prompts: avg@k after the steps config.eval names (RlStep.testAccuracy). */
  evalRecords?: readonly RlRecord[];
  onStep?: (step: RlStep) => void;
}

export interface RlStep {
  step: number;
  /** Mean outcome score of every sampled rollout (before filtering): the policy's sampled accuracy. */
  accuracy: number;
  /** Share of sampled prompts whose responses have mixed outcomes. */
  mixedFraction: number;
  /** Sequences trained on (kept prompt groups × n). */
  sequences: number;
  meanResponseLength: number;
  /** Reward-model loss: the mean over its optimizer steps of each step's loss; absent when no step ran (no reward model, update none, nothing to learn). */
  rmLoss?: number;
  /**
   * The reward model's outcome accuracy on this step's batch: the share of rows whose implicit reward Σ_t β·log
   * π_φ/π_ref at the sampled tokens (as the estimator reads it: token rewards, or the TD's sampled slot, which the
   * reference zeroes at the last position) has the sign of the outcome (> 0 for a correct one), after an update
   * 'before' and before an update 'after'. Absent when the estimator reads no rewards.
   */
  rmAccuracy?: number;
  /** Policy loss terms, means over micro-batches: total, Tok-PPO, Dist-PPO. */
  loss: number;
  pgLoss: number;
  topkPgLoss: number;
  /** Token-mean entropy of π_θ over response tokens (the bonus's term when actor.entropyCoeff > 0). */
  entropy: number;
  pgClipfrac: number;
  /** Mean log π_old − log π_θ over response tokens (0 on the first mini-batch: it is on-policy). */
  ppoKl: number;
  /** The policy's gradient norm before clipping, of the step's last mini-batch. */
  gradNorm: number;
  /** avg@k on the evaluation prompts after this step (only on evaluation steps). */
  testAccuracy?: number;
  seconds: number;
}

/**
 * Trains `models.policy` with `config.algorithm` on prompts drawn from `records`; returns one record per RL step. With
 * `config.actor.lora` a new adapter is attached to the policy and only it trains; it stays attached afterwards.
 */
export async function trainRl(
  models: RlModels,
  tokenizer: Tokenizer,
  records: readonly RlRecord[],
  config: RlConfig,
  options: RlRunOptions = {},
): Promise<RlStep[]> {
  const { policy, rewardModel, reference } = models;
  const usesRm = config.rewardModel.kind !== 'none';
  if (records.length === 0) throw new Error('RL needs at least one prompt record');
  if (usesRm && !rewardModel)
    throw new Error(`${config.algorithm} needs a reward model (π_φ, rewardModel.kind ${config.rewardModel.kind}) to train online`);
  if (usesRm && config.rewardModel.reference === 'frozen' && !reference) {
    throw new Error('rewardModel.reference is frozen: give the reference model');
  }
  if (rewardModel === policy || reference === policy) throw new Error('the reward model and reference must be models separate from the policy');
  if (config.actor.lora) {
    if (policy.lora) throw new Error('actor.lora asks for a new adapter, but the policy already has one (it would train as is without actor.lora)');
    await policy.addLora({ ...config.actor.lora, seed: deriveSeed(config.seed, 'lora'), signal: options.signal });
  }
  const prompts = new PromptStream(records, config.seed);
  // One verifier pool for the run's rollouts and evaluations (its workers start at the first check).
  const verifier = new VerifierPool();
  const start = performance.now();
  const train = (rm?: Trainee) =>
    withOptimizer(policy, { lr: config.actor.lr, betas: [0.9, 0.999], weightDecay: config.actor.weightDecay }, async (optimizer, parameters) => {
      const history: RlStep[] = [];
      for (let step = 0; step < config.steps; step++) {
        const record = await tidy(() =>
          rlStep(step, { models, tokenizer, prompts, verifier, config, options, rm, actor: { optimizer, parameters } }),
        );
        const { every } = config.eval;
        const evaluate = options.evalRecords?.length && ((every > 0 && (step + 1) % every === 0) || step === config.steps - 1);
        const testAccuracy = evaluate
          ? (await sampledAccuracy(policy, tokenizer, options.evalRecords!, { ...evalRolloutOptions(config), verifier, signal: options.signal }))
              .accuracy
          : undefined;
        const done = { ...record, ...(testAccuracy !== undefined && { testAccuracy }), seconds: (performance.now() - start) / 1000 };
        history.push(done);
        options.onStep?.(done);
      }
      return history;
    });
  try {
    if (!usesRm || config.rewardModel.update === 'none') return await train();
    return await withOptimizer(rewardModel!, { lr: config.rewardModel.lr, betas: [0.9, 0.999], weightDecay: 0 }, (optimizer, parameters) =>
      train({ optimizer, parameters }),
    );
  } finally {
    await verifier.close();
  }
}

/** A model being trained: its optimizer and parameters. */
interface Trainee {
  optimizer: AdamW;
  parameters: Map<string, Tensor>;
}

interface StepContext {
  models: RlModels;
  tokenizer: Tokenizer;
  prompts: PromptStream;
  verifier: VerifierPool;
  config: RlConfig;
  options: RlRunOptions;
  /** The reward model's optimizer, when it is updated online. */
  rm?: Trainee;
  actor: Trainee;
}

async function rlStep(step: number, context: StepContext): Promise<Omit<RlStep, 'seconds'>> {
  const { models, tokenizer, prompts, verifier, config, options } = context;
  const { rollout: r, actor } = config;
  const rewardModel = config.rewardModel.kind === 'none' ? undefined : getRewardModel(config.rewardModel.kind);
  const estimator = getAdvantage(config.advantage.estimator);
  const losses = Object.entries(actor.policyLosses)
    .filter(([, coef]) => coef > 0)
    .map(([name, coef]) => ({ loss: getPolicyLoss(name), coef }));
  const distPpo = losses.some(({ loss }) => loss.candidates);
  const signal = options.signal;

  // 1. Rollouts, scored, and the prompt groups kept for training.
  const reward = options.reward && ((rollout: Omit<Rollout, 'score'>) => checkedReward(options.reward!(rollout), rewardModel !== undefined));
  const rollouts = await sampleRollouts(models.policy, tokenizer, prompts.next(Math.ceil(r.promptsPerStep * r.oversample)), {
    samples: r.samples,
    temperature: r.temperature,
    maxNewTokens: r.maxNewTokens,
    batchSize: r.batchSize,
    seed: deriveSeed(config.seed, `rollouts-${step}`),
    verifier,
    reward,
    signal,
  });
  const sampledGroups = groupByPrompt(rollouts);
  const groups = keepGroups(sampledGroups, r.promptsPerStep, r.maxNewTokens, r.accuracyBounds);
  const batch = new RolloutBatch(groups.flat(), r.samples, actor.microBatch);
  const acc = batch.rows.map((row) => row.score);

  // 2. π_old: log-probs of the sampled tokens and the candidate set (top-1 = the sampled token unless Dist-PPO).
  const candidates = await batch.concatMicro(async (rows) => {
    const oldLogits = await batch.responseLogits(models.policy, rows, { noGrad: true, signal });
    return distrlCandidates(
      {
        oldLogits,
        tokens: batch.take(batch.tokens, rows),
        mask: batch.take(batch.mask, rows),
        k: distPpo ? actor.candidateTopK : 1,
        minP: actor.candidateMinP,
        temperature: r.temperature,
        conventions: distPpo ? config.conventions : 'reference',
      },
      { signal },
    );
  });

  // 3. The implicit reward model: online update, then its rewards on this batch, then the advantages.
  let rmLoss: number | undefined;
  let rmAccuracy: number | undefined;
  const { gamma, lam, rewardGtCoef, rewardGaeCoef, rewardDpoCoef } = config.advantage;
  const input: AdvantageInput = {
    acc,
    mask: batch.mask.toNested() as Matrix,
    n: r.samples,
    beta: config.rewardModel.beta,
    gamma,
    lam,
    rewardGtCoef,
    rewardGaeCoef,
    rewardDpoCoef,
    conventions: config.conventions,
  };
  let advantages: AdvantageOutput;
  if (!rewardModel) {
    advantages = estimator.estimate(input);
  } else {
    const refLogprobs = config.rewardModel.reference === 'frozen' ? await batch.sampledLogprobs(models.reference!, signal) : candidates.oldLogProb;
    const update = async () => {
      if (context.rm) rmLoss = await updateRewardModel(context, rewardModel, batch, refLogprobs, acc);
    };
    if (config.rewardModel.update === 'before') await update();
    const scores = estimator.needs === 'outcome' ? {} : await scoreBatch(context, rewardModel, estimator.needs, batch, candidates, refLogprobs);
    advantages = estimator.estimate({ ...input, ...scores });
    const sampled = scores.tokenLogRatio ?? scores.candidateTd?.map((row) => row.map((cell) => cell[0]));
    if (sampled) rmAccuracy = outcomeAccuracy(sampled, input.mask, acc);
    if (config.rewardModel.update === 'after') await update();
  }
  const scaledCandidateTd = advantages.candidateAdvantages
    ? Tensor.from(Float32Array.from(advantages.candidateAdvantages.flat(2)), candidates.oldTopkLogprobs.shape)
    : Tensor.zeros(candidates.oldTopkLogprobs.shape);

  // 4. PPO on the policy: Σ coef × policy loss (Tok-PPO on the sampled tokens, Dist-PPO on the candidates, from one
  // fused pass), one optimizer step per mini-batch.
  const advantageTensor = Tensor.from(Float32Array.from(advantages.advantages.flat()), batch.mask.shape);
  const sums = { loss: 0, pgLoss: 0, topkPgLoss: 0, entropy: 0, pgClipfrac: 0, ppoKl: 0 };
  let micros = 0;
  let gradNorm = 0;
  for (const miniBatch of batch.miniBatches(actor.miniBatches)) {
    await context.actor.optimizer.zeroGrad({ signal });
    for (const rows of miniBatch) {
      await tidy(async () => {
        const newLogits = await batch.responseLogits(models.policy, rows, { signal });
        const rowMask = batch.take(batch.mask, rows);
        const out = await distrlLoss(
          {
            newLogits,
            candidateIndices: batch.take(candidates.candidateIndices, rows),
            oldLogProb: batch.take(candidates.oldLogProb, rows),
            oldTopkLogprobs: batch.take(candidates.oldTopkLogprobs, rows),
            candidateMask: batch.take(candidates.candidateMask, rows),
            advantages: batch.take(advantageTensor, rows),
            scaledCandidateTd: batch.take(scaledCandidateTd, rows),
            mask: rowMask,
            clipRatioLow: actor.clipRatioLow,
            clipRatioHigh: actor.clipRatioHigh,
            clipRatioC: actor.clipRatioC,
            cliprangeTopk: actor.cliprangeTopk,
            alpha: 0, // the actor's loss is built below from the registered terms
            temperature: r.temperature,
            conventions: config.conventions,
          },
          { signal },
        );
        const policyLoss = losses.map(({ loss, coef }) => loss.term(out).mul(coef)).reduce((sum, term) => sum.add(term));
        // verl: loss = pg − entropy_coeff · token-mean entropy (a metric only when the coefficient is 0).
        const bonus = actor.entropyCoeff > 0;
        const tokenEntropies = await tokenEntropy(bonus ? newLogits : newLogits.detach(), { temperature: r.temperature, signal });
        const entropy = tokenEntropies.mul(rowMask).sum().div(rowMask.sum().add(1e-8));
        const loss = bonus ? policyLoss.sub(entropy.mul(actor.entropyCoeff)) : policyLoss;
        await loss.div(miniBatch.length).backwardAsync(undefined, { signal });
        sums.loss += loss.item();
        sums.entropy += entropy.item();
        sums.pgLoss += out.pgLoss.item();
        sums.topkPgLoss += out.topkPgLoss.item();
        sums.pgClipfrac += out.pgClipfrac;
        sums.ppoKl += out.ppoKl;
        micros++;
      });
    }
    gradNorm = await clipGradNorm(context.actor.parameters, actor.maxGradNorm, { signal });
    if (Number.isFinite(gradNorm)) await context.actor.optimizer.step({ lr: actor.lr, signal });
  }

  const mean = (x: number) => x / micros;
  return {
    step,
    accuracy: rollouts.reduce((a, x) => a + x.score, 0) / rollouts.length,
    mixedFraction: sampledGroups.filter((group) => isMixed(group, MIXED_ACCURACY_BOUNDS)).length / sampledGroups.length,
    sequences: batch.rows.length,
    meanResponseLength: batch.rows.reduce((a, x) => a + x.response_ids.length, 0) / batch.rows.length,
    rmLoss,
    rmAccuracy,
    loss: mean(sums.loss),
    pgLoss: mean(sums.pgLoss),
    topkPgLoss: mean(sums.topkPgLoss),
    entropy: mean(sums.entropy),
    pgClipfrac: mean(sums.pgClipfrac),
    ppoKl: mean(sums.ppoKl),
    gradNorm,
  };
}

/** The reward model's rewards on the batch, as the estimator needs them: token log ratios, or TD at the candidates. */
async function scoreBatch(
  context: StepContext,
  rewardModel: RewardModel,
  needs: RewardScoreInput['needs'],
  batch: RolloutBatch,
  candidates: { candidateIndices: Tensor; oldTopkLogprobs: Tensor },
  refLogprobs: Tensor,
): Promise<Pick<AdvantageInput, 'tokenLogRatio' | 'candidateTd'>> {
  const { config, models, options } = context;
  const signal = options.signal;
  const frozen = config.rewardModel.reference === 'frozen';
  const scores = await batch.concatMicro(async (rows) => {
    const rmLogits = await batch.responseLogits(models.rewardModel!, rows, { noGrad: true, signal });
    const input: RewardScoreInput = {
      needs,
      rmLogits,
      tokens: batch.take(batch.tokens, rows),
      mask: batch.take(batch.mask, rows),
      beta: config.rewardModel.beta,
      temperature: config.rollout.temperature,
    };
    if (needs === 'token-rewards')
      return { tokenLogRatio: (await rewardModel.score({ ...input, refLogprobs: batch.take(refLogprobs, rows) }, { signal })).tokenLogRatio! };
    // The TD β·log π_φ/π_ref at the candidates, against the reference the reward model trains against.
    const candidateIndices = batch.take(candidates.candidateIndices, rows);
    const refTopkLogprobs = frozen
      ? await tokenLogprobs(await batch.responseLogits(models.reference!, rows, { noGrad: true, signal }), candidateIndices, { signal })
      : batch.take(candidates.oldTopkLogprobs, rows);
    return { candidateTd: (await rewardModel.score({ ...input, candidateIndices, refTopkLogprobs }, { signal })).candidateTd! };
  });
  return needs === 'token-rewards'
    ? { tokenLogRatio: (scores as { tokenLogRatio: Tensor }).tokenLogRatio.toNested() as Matrix }
    : { candidateTd: (scores as { candidateTd: Tensor }).candidateTd.toNested() as number[][][] };
}

/**
 * One optimizer step of π_φ per RM mini-batch on this batch's outcomes (a step with nothing to learn is skipped);
 * returns the mean of the steps' losses, undefined when none ran.
 */
async function updateRewardModel(
  context: StepContext,
  rewardModel: RewardModel,
  batch: RolloutBatch,
  refLogprobs: Tensor,
  acc: number[],
): Promise<number | undefined> {
  const { config, models, options } = context;
  const { optimizer, parameters } = context.rm!;
  const rmConfig = config.rewardModel;
  const groupSize = config.rollout.samples;
  const signal = options.signal;
  const accTensor = Tensor.from(Float32Array.from(acc), [acc.length]);
  let total = 0;
  let steps = 0;
  for (const miniBatch of batch.miniBatches(rmConfig.miniBatches)) {
    const stepAcc = acc.slice(miniBatch[0][0], miniBatch[miniBatch.length - 1][1]);
    if (rewardModel.learnsFrom && !rewardModel.learnsFrom(stepAcc, groupSize)) continue;
    await optimizer.zeroGrad({ signal });
    let stepLoss = 0;
    for (const rows of miniBatch) {
      await tidy(async () => {
        const share = await rewardModel.update(
          {
            logits: await batch.responseLogits(models.rewardModel!, rows, { signal }),
            tokens: batch.take(batch.tokens, rows),
            refLogprobs: batch.take(refLogprobs, rows),
            mask: batch.take(batch.mask, rows),
            acc: batch.take(accTensor, rows),
            groupSize,
            step: { microBatches: miniBatch.length, acc: stepAcc },
          },
          rmConfig,
          { signal },
        );
        await share.backwardAsync(undefined, { signal });
        stepLoss += share.item();
      });
    }
    const gradNorm = await clipGradNorm(parameters, rmConfig.maxGradNorm, { signal });
    if (Number.isFinite(gradNorm)) await optimizer.step({ lr: rmConfig.lr, signal });
    total += stepLoss;
    steps++;
  }
  return steps > 0 ? total / steps : undefined;
}

/** Share of rows whose summed reward over the response has the outcome's sign (> 0 for a correct one). */
function outcomeAccuracy(rewards: Matrix, mask: Matrix, acc: readonly number[]): number {
  const right = rewards.filter((row, b) => row.reduce((sum, v, t) => sum + v * mask[b][t], 0) > 0 === acc[b] > 0.5).length;
  return right / rewards.length;
}

/** Whether a group's mean outcome lies strictly between the bounds (MIXED_ACCURACY_BOUNDS: it has mixed outcomes). */
const isMixed = (group: readonly Rollout[], [low, high]: readonly [number, number]) => {
  const mean = group.reduce((a, x) => a + x.score, 0) / group.length;
  return mean > low && mean < high;
};

/**
 * The reference's filter_and_downsample: groups whose mean outcome lies strictly inside `bounds` (default (0.01, 0.99):
 * mixed outcomes) with no truncated response come first, then the rest, in sampling order; the first `count` are
 * kept, so the others train only when the first kind runs short.
 */
export function keepGroups(
  groups: readonly Rollout[][],
  count: number,
  maxNewTokens: number,
  bounds: readonly [number, number] = MIXED_ACCURACY_BOUNDS,
): Rollout[][] {
  const passes = (group: readonly Rollout[]) => isMixed(group, bounds) && group.every((x) => x.response_ids.length < maxNewTokens - 1);
  return [...groups.filter(passes), ...groups.filter((g) => !passes(g))].slice(0, count);
}

function checkedReward(score: number, unit: boolean): number {
  if (!Number.isFinite(score)) throw new Error(`the reward function returned ${score}, not a finite number`);
  if (unit && !(score >= 0 && score <= 1)) throw new Error(`the reward function returned ${score}: with a reward model, rewards must be in [0, 1]`);
  return score;
}

/** Prompts in shuffled passes over the records (a new order each pass), from a seed. */
class PromptStream {
  private readonly rng: Rng;
  private order: number[] = [];
  constructor(
    private readonly records: readonly RlRecord[],
    seed: number,
  ) {
    this.rng = new Rng(deriveSeed(seed, 'rl-prompts'));
  }
  next(count: number): RlRecord[] {
    while (this.order.length < count) this.order = this.order.concat(this.rng.permutation(this.records.length));
    return this.order.splice(0, count).map((i) => this.records[i]);
  }
}

/** A step's rollouts as padded tensors, split into micro-batches of whole prompt groups. */
class RolloutBatch {
  readonly promptLength: number;
  readonly responseLength: number;
  /** [B, P + R] int64 and its attention mask. */
  readonly inputIds: Tensor;
  readonly attentionMask: Tensor;
  /** [B, R] response tokens (int64) and response mask (float32). */
  readonly tokens: Tensor;
  readonly mask: Tensor;
  private readonly microRows: number;

  constructor(
    readonly rows: readonly Rollout[],
    private readonly groupSize: number,
    microBatch: number,
  ) {
    if (rows.some((x) => x.response_ids.length === 0)) throw new Error('a rollout has no response tokens');
    const P = (this.promptLength = rows.reduce((m, x) => Math.max(m, x.prompt_ids.length), 0));
    const R = (this.responseLength = rows.reduce((m, x) => Math.max(m, x.response_ids.length), 0));
    const B = rows.length;
    const ids = new BigInt64Array(B * (P + R));
    const attention = new BigInt64Array(B * (P + R));
    const tokens = new BigInt64Array(B * R);
    const mask = new Float32Array(B * R);
    rows.forEach((x, b) => {
      const base = b * (P + R);
      x.prompt_ids.forEach((id, i) => {
        ids[base + P - x.prompt_ids.length + i] = BigInt(id);
        attention[base + P - x.prompt_ids.length + i] = 1n;
      });
      x.response_ids.forEach((id, i) => {
        ids[base + P + i] = BigInt(id);
        attention[base + P + i] = 1n;
        tokens[b * R + i] = BigInt(id);
        mask[b * R + i] = 1;
      });
    });
    this.inputIds = Tensor.from(ids, [B, P + R]);
    this.attentionMask = Tensor.from(attention, [B, P + R]);
    this.tokens = Tensor.from(tokens, [B, R]);
    this.mask = Tensor.from(mask, [B, R]);
    this.microRows = Math.max(1, Math.floor(microBatch / groupSize)) * groupSize;
  }

  /** Row ranges [start, end) of whole groups, `count` near-equal mini-batches, each cut into micro-batches. */
  miniBatches(count: number): [number, number][][] {
    const groups = this.rows.length / this.groupSize;
    const parts = Math.min(count, groups);
    const out: [number, number][][] = [];
    for (let m = 0; m < parts; m++) {
      const start = Math.round((m * groups) / parts) * this.groupSize;
      const end = Math.round(((m + 1) * groups) / parts) * this.groupSize;
      const micro: [number, number][] = [];
      for (let s = start; s < end; s += this.microRows) micro.push([s, Math.min(end, s + this.microRows)]);
      out.push(micro);
    }
    return out;
  }

  /** Rows [start, end) of a [B, ...] tensor. */
  take(tensor: Tensor, [start, end]: [number, number]): Tensor {
    return tensor.slice(0, start, end).contiguous();
  }

  /** Logits of `model` at the response positions, [rows, R, V] (position t predicts response token t). */
  async responseLogits(model: CausalLM, rows: [number, number], options: { noGrad?: boolean; signal?: AbortSignal }): Promise<Tensor> {
    const logits = await model.forward(this.take(this.inputIds, rows), this.take(this.attentionMask, rows), options);
    return logits.slice(1, this.promptLength - 1, this.promptLength - 1 + this.responseLength);
  }

  /** log π(sampled token) of a model on every row, no graph, [B, R] (0 at padding). */
  async sampledLogprobs(model: CausalLM, signal?: AbortSignal): Promise<Tensor> {
    const { logprobs } = await this.concatMicro(async (rows) => {
      const logits = await this.responseLogits(model, rows, { noGrad: true, signal });
      const index = this.take(this.tokens, rows).unsqueeze(-1);
      return { logprobs: (await tokenLogprobs(logits, index, { signal })).squeeze(-1).mul(this.take(this.mask, rows)) };
    });
    return logprobs;
  }

  /** Runs `fn` on each micro-batch and concatenates each tensor it returns along the batch (other values are dropped). */
  async concatMicro<O extends object>(fn: (rows: [number, number]) => Promise<O>): Promise<{ [K in keyof O]: Tensor }> {
    const parts: Record<string, Tensor>[] = [];
    for (const micro of this.miniBatches(1)[0]) {
      const out = await tidy(async () => {
        const result = await fn(micro);
        return Object.fromEntries(Object.entries(result).filter(([, v]) => v instanceof Tensor)) as Record<string, Tensor>;
      });
      parts.push(out);
    }
    return Object.fromEntries(
      Object.keys(parts[0]).map((key) => [
        key,
        Tensor.cat(
          parts.map((p) => p[key]),
          0,
        ),
      ]),
    ) as { [K in keyof O]: Tensor };
  }
}
