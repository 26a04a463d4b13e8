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
import {
  distrlCandidates,
  distrlLoss,
  headLogprobs,
  headLogprobsAndEntropy,
  headInputFields,
  outputLogprobs,
  tokenEntropy,
  type DistrlLossInputs,
  type HeadInput,
} from '../ops/objectives.js';
import { deriveSeed, Rng } from '../util/rng.js';
import { Tensor, tidy, type AsyncOptions, type DeviceName } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { shareOf, SINGLE_PROCESS, type ProcessGroup } from '../distributed/group.js';
import { runToEnd, stateField, Trainee, type TrainingSession } from './common.js';
import { sampledAccuracy } from '../eval/accuracy.js';
import type { Matrix } from '../algorithms/masked.js';
import { OpenAIEngine } from '../rollout/openai.js';
import { groupByPrompt, sampleRollouts, type Rollout } from '../rollout/rollouts.js';
import { stepFolderName } from '../util/fs.js';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';

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
  /**
   * With config.actor.lora: attach the PEFT adapter in this folder (a checkpoint's, when resuming) instead of a new
   * one.
   */
  policyAdapter?: string;
  /**
   * Data-parallel: every rank samples its share of the rollouts, which all ranks then hold, and runs its share of
   * every micro-batch loop; the tensors the whole batch needs (π_old's candidates, the rewards) are gathered, so the
   * advantages and their batch statistics are those of one process with the whole batch.
   */
  group?: ProcessGroup;
  /**
   * With rollout.engine openai: the folder the policy's weights are written to for the server (rollout.syncDir
   * overrides it; runRl: <run>/rollout-weights).
   */
  rolloutSyncDir?: string;
  /**
   * Names this run's weights in the sync folder (<syncDir>/<id>/step-N) and its adapters on a vLLM server
   * (policy-<id>-step-N), so that runs sharing a folder or a server never touch each other's. A run resumed under
   * the same id first removes what an interrupted attempt left there (runRl: an id of the run folder). Default: a
   * new random id per session.
   */
  rolloutRunId?: string;
}

/** Seconds per phase of an RL step (verl's timing_s/*); a phase the step did not run is absent. */
export interface RlTiming {
  gen: number;
  verify: number;
  oldLogProb: number;
  /** The reward model's online update: absent without a reward model and with rewardModel.update none. */
  rmUpdate?: number;
  /** The reward model's scoring pass: absent without a reward model and when the estimator reads no rewards. */
  rmScore?: number;
  adv: number;
  updateActor: number;
  /** Held-out evaluation: evaluation steps only. */
  eval?: number;
  step: number;
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
  maxResponseLength: number;
  /** Share of trained responses that reached rollout.maxNewTokens. */
  responseClipRatio: number;
  /**
   * |log-prob the sampler reported − π_old's log-prob the trainer computed| over the trained response tokens: 0 up
   * to rounding when the sampler holds the policy's weights (local, or a server synced each step).
   */
  rolloutLogprobDiff?: { mean: number; max: number };
  /** Reward-model loss: the mean over its optimizer steps of each step's loss; absent when no step ran (no reward model, update none, nothing to learn). */
  rmLoss?: number;
  /**
   * The reward model's outcome accuracy on this step's batch: the share of rows whose implicit reward Σ_t β·log
   * π_φ/π_ref at the sampled tokens (as the estimator reads it: token rewards, or the TD's sampled slot, which the
   * reference zeroes at the last position) has the sign of the outcome (> 0 for a correct one), after an update
   * 'before' and before an update 'after'. Absent when the estimator reads no rewards.
   */
  rmAccuracy?: number;
  /** The RM score of the paper's eq. 19, (log π_φ(y|x) − log π_ref(y|x)) / |y|, mean over the batch (absent as rmAccuracy). */
  rmScore?: number;
  /** Sampled-token advantages over response tokens. */
  advantages: { mean: number; max: number; min: number };
  /**
   * π_old's candidate set per response token: its mean size and mean probability mass (the sampled token alone
   * without Dist-PPO; a response's last token has none but under Dist-PPO with conventions: paper).
   */
  candidateSize: number;
  candidateCoverage: number;
  /** Policy loss terms, means over micro-batches: total, Tok-PPO, Dist-PPO. */
  loss: number;
  pgLoss: number;
  topkPgLoss: number;
  /** Token-mean entropy of π_θ over response tokens (the bonus's term when actor.entropyCoeff > 0). */
  entropy: number;
  pgClipfrac: number;
  /** Share of Dist-PPO candidate slots whose ratio is clipped. */
  topkPgClipfrac: number;
  /** Mean log π_old − log π_θ over response tokens (0 on the first mini-batch: it is on-policy). */
  ppoKl: number;
  /** The policy's gradient norm before clipping, of the step's last mini-batch. */
  gradNorm: number;
  lr: number;
  /** avg@k on the evaluation prompts after this step (only on evaluation steps). */
  testAccuracy?: number;
  /** Prompt + response tokens sampled this step (the throughput's numerator). */
  tokens: number;
  timing: RlTiming;
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
  return runToEnd(await RlSession.open(models, tokenizer, records, config, options), options);
}

/** The RL loop one step at a time (see trainRl); `RlSession.open` checks the setup and attaches the LoRA adapter. */
export class RlSession implements TrainingSession<RlStep> {
  readonly totalSteps: number;
  readonly trainees: Readonly<Record<string, Trainee>>;
  private readonly start = performance.now();
  private done = 0;

  private constructor(
    private readonly context: StepContext,
    trainees: Record<string, Trainee>,
  ) {
    this.totalSteps = context.config.steps;
    this.trainees = trainees;
  }

  static async open(
    models: RlModels,
    tokenizer: Tokenizer,
    records: readonly RlRecord[],
    config: RlConfig,
    options: RlRunOptions = {},
  ): Promise<RlSession> {
    const { policy, rewardModel, reference } = models;
    const usesRm = config.rewardModel.kind !== 'none';
    if (records.length === 0) throw new Error('RL needs at least one prompt record');
    if (usesRm && !rewardModel)
      throw new Error(`${config.algorithm} needs a reward model (π_φ, rewardModel.kind ${config.rewardModel.kind}) to train online`);
    if (usesRm && config.rewardModel.reference === 'frozen' && !reference) {
      throw new Error('rewardModel.reference is frozen: give the reference model');
    }
    if (rewardModel === policy || reference === policy) throw new Error('the reward model and reference must be models separate from the policy');
    if (options.policyAdapter && !config.actor.lora) throw new Error('policyAdapter is given, but the config trains no LoRA adapter (actor.lora)');
    if (config.actor.lora) {
      if (policy.lora) throw new Error('actor.lora asks for a new adapter, but the policy already has one (it would train as is without actor.lora)');
      if (options.policyAdapter) await policy.loadAdapter(options.policyAdapter, { signal: options.signal });
      else await policy.addLora({ ...config.actor.lora, seed: deriveSeed(config.seed, 'lora'), signal: options.signal });
    }
    const group = options.group ?? SINGLE_PROCESS;
    const actor = new Trainee(policy, { lr: config.actor.lr, betas: [0.9, 0.999], weightDecay: config.actor.weightDecay }, group);
    const rm =
      usesRm && config.rewardModel.update !== 'none'
        ? new Trainee(rewardModel!, { lr: config.rewardModel.lr, betas: [0.9, 0.999], weightDecay: 0 }, group)
        : undefined;
    const { engine, url, model, apiKeyEnv, sync } = config.rollout;
    const syncDir = sync === 'none' ? undefined : (config.rollout.syncDir ?? options.rolloutSyncDir);
    if (engine === 'openai' && sync !== 'none' && !syncDir)
      throw new Error('rollout.syncDir: name a folder both the trainer and the server can read');
    const runId = options.rolloutRunId ?? randomBytes(6).toString('hex');
    const rollouts =
      engine === 'openai'
        ? { engine: new OpenAIEngine({ url: url!, model, apiKey: process.env[apiKeyEnv] }), runId, syncDir: syncDir && join(syncDir, runId) }
        : undefined;
    // One verifier pool for the run's rollouts and evaluations (its workers start at the first check).
    const verifier = new VerifierPool();
    const prompts = new PromptStream(records, config.seed);
    return new RlSession(
      { models, tokenizer, prompts, verifier, config, options, rm, actor, group, rollouts },
      { policy: actor, ...(rm && { 'reward-model': rm }) },
    );
  }

  get stepsDone(): number {
    return this.done;
  }

  async next(): Promise<RlStep> {
    const { config, options, verifier, tokenizer, models } = this.context;
    const stepStart = performance.now();
    const step = this.done;
    await syncRolloutWeights(this.context, step);
    const { timing, ...record } = await tidy(() => rlStep(step, this.context));
    const { every } = config.eval;
    const evaluate = options.evalRecords?.length && ((every > 0 && (step + 1) % every === 0) || step === config.steps - 1);
    const evalStart = performance.now();
    const testAccuracy = evaluate
      ? (
          await sampledAccuracy(models.policy, tokenizer, options.evalRecords!, {
            ...evalRolloutOptions(config),
            verifier,
            group: this.context.group,
            signal: options.signal,
          })
        ).accuracy
      : undefined;
    const now = performance.now();
    this.done++;
    return {
      ...record,
      ...(testAccuracy !== undefined && { testAccuracy }),
      timing: { ...timing, ...(evaluate ? { eval: (now - evalStart) / 1000 } : {}), step: (now - stepStart) / 1000 },
      seconds: (now - this.start) / 1000,
    };
  }

  state(): Record<string, unknown> {
    return { step: this.done, prompts: this.context.prompts.state() };
  }

  restore(state: Record<string, unknown>): void {
    this.done = stateField<number>(state, 'step', Number.isInteger);
    this.context.prompts.restore(stateField<Record<string, unknown>>(state, 'prompts', (v) => typeof v === 'object' && v !== null));
  }

  async close(): Promise<void> {
    try {
      await this.context.verifier.close();
      await this.releaseAdapter();
    } finally {
      await this.context.actor.close();
      await this.context.rm?.close();
    }
  }

  /** vllm-lora: unloads the run's last adapter, so that the server does not keep it after the run. */
  private async releaseAdapter(): Promise<void> {
    const { rollouts } = this.context;
    const adapter = rollouts?.synced?.adapter;
    if (!adapter) return;
    rollouts.synced = undefined;
    try {
      await rollouts.engine.unloadLoraAdapter(adapter);
    } catch (err) {
      // The run's result stands; the server only keeps one adapter loaded.
      process.stderr.write(`could not unload the adapter ${adapter} from the rollout server: ${(err as Error).message}\n`);
    }
  }
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
  group: ProcessGroup;
  /**
   * rollout.engine openai: the server, the run's id there (RlRunOptions.rolloutRunId), the run's folder its weights
   * go through (none: sync off) and what the last sync left on it.
   */
  rollouts?: { engine: OpenAIEngine; runId: string; syncDir?: string; synced?: { dir: string; adapter?: string } };
}

/**
 * Before a step samples from a server, the policy's current weights reach it (rank 0 writes them, in a new folder
 * per step: the full checkpoint, or a LoRA actor's adapter, and the server loads them; the other ranks wait), then
 * the previous folder goes. The session's first sync first clears what an interrupted attempt of the same run left:
 * its folders, and its adapters still loaded on a vLLM server (a name loaded twice is refused there).
 */
async function syncRolloutWeights(context: StepContext, step: number): Promise<void> {
  const { rollouts, config, group, models, options } = context;
  if (!rollouts?.syncDir) return;
  const { policy } = models;
  const lora = config.rollout.sync === 'vllm-lora';
  const adapterPrefix = `policy-${rollouts.runId}-`;
  if (group.rank === 0) {
    if (!rollouts.synced) {
      await rm(rollouts.syncDir, { recursive: true, force: true });
      if (lora) {
        for (const id of await rollouts.engine.modelIds(options.signal)) {
          if (id.startsWith(adapterPrefix)) await rollouts.engine.unloadLoraAdapter(id, options.signal);
        }
      }
    }
    const dir = join(rollouts.syncDir, stepFolderName(step));
    if (policy.lora) await policy.saveAdapter(dir, { signal: options.signal });
    else await policy.save(dir, { signal: options.signal });
    let adapter: string | undefined;
    if (!lora) await rollouts.engine.reload(policy.lora ? { adapter: dir } : { model: dir }, options.signal);
    else {
      adapter = `${adapterPrefix}${stepFolderName(step)}`;
      await rollouts.engine.loadLoraAdapter(adapter, dir, options.signal);
      if (rollouts.synced?.adapter) await rollouts.engine.unloadLoraAdapter(rollouts.synced.adapter, options.signal);
    }
    if (rollouts.synced) await rm(rollouts.synced.dir, { recursive: true, force: true });
    rollouts.synced = { dir, adapter };
  }
  await group.barrier({ signal: options.signal });
}

/** Seconds since `since` (a performance.now() reading). */
const seconds = (since: number) => (performance.now() - since) / 1000;

async function rlStep(
  step: number,
  context: StepContext,
): Promise<Omit<RlStep, 'seconds' | 'testAccuracy' | 'timing'> & { timing: Omit<RlTiming, 'eval' | 'step'> }> {
  const { models, tokenizer, prompts, verifier, config, options, group } = context;
  const { rollout: r, actor } = config;
  const rewardModel = config.rewardModel.kind === 'none' ? undefined : getRewardModel(config.rewardModel.kind);
  const estimator = getAdvantage(config.advantage.estimator);
  const losses = Object.entries(actor.policyLosses)
    .filter(([, coef]) => coef > 0)
    .map(([name, coef]) => ({ loss: getPolicyLoss(name), coef }));
  const distPpo = losses.some(({ loss }) => loss.candidates);
  const signal = options.signal;
  const timing: Omit<RlTiming, 'eval' | 'step'> = { gen: 0, verify: 0, oldLogProb: 0, adv: 0, updateActor: 0 };

  // 1. Rollouts, scored, and the prompt groups kept for training.
  const reward = options.reward && ((rollout: Omit<Rollout, 'score'>) => checkedReward(options.reward!(rollout), rewardModel !== undefined));
  const sampling = { generate: 0, verify: 0 };
  const rollouts = await sampleRollouts(
    context.rollouts?.engine ?? models.policy,
    tokenizer,
    prompts.next(Math.ceil(r.promptsPerStep * r.oversample)),
    {
      samples: r.samples,
      temperature: r.temperature,
      maxNewTokens: r.maxNewTokens,
      batchSize: r.batchSize,
      seed: deriveSeed(config.seed, `rollouts-${step}`),
      verifier,
      reward,
      group,
      signal,
      timing: sampling,
    },
  );
  [timing.gen, timing.verify] = [sampling.generate, sampling.verify];
  const sampledGroups = groupByPrompt(rollouts);
  const groups = keepGroups(sampledGroups, r.promptsPerStep, r.maxNewTokens, r.accuracyBounds);
  const batch = new RolloutBatch(groups.flat(), r.samples, actor.microBatch, models.policy.device, config.fusedHead, group);
  const acc = batch.rows.map((row) => row.score);

  // 2. π_old: log-probs of the sampled tokens and the candidate set (top-1 = the sampled token unless Dist-PPO).
  let phase = performance.now();
  const candidates = await batch.concatMicro(async (rows) => {
    const old = await batch.responseOutput(models.policy, rows, { noGrad: true, signal });
    return distrlCandidates(
      {
        ...(old instanceof Tensor ? { oldLogits: old } : headInputFields('oldHidden', old)),
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
  const candidateStats = candidateSetStats(candidates, batch.mask);
  const rolloutLogprobDiff = logprobDiff(batch.rows, candidates.oldLogProb);
  timing.oldLogProb = seconds(phase);

  // 3. The implicit reward model: online update, then its rewards on this batch, then the advantages.
  let rmLoss: number | undefined;
  let rmAccuracy: number | undefined;
  let rmScore: number | undefined;
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
    phase = performance.now();
    advantages = estimator.estimate(input);
    timing.adv = seconds(phase);
  } else {
    phase = performance.now();
    const refLogprobs = config.rewardModel.reference === 'frozen' ? await batch.sampledLogprobs(models.reference!, signal) : candidates.oldLogProb;
    timing.oldLogProb += seconds(phase);
    const update = async () => {
      const updateStart = performance.now();
      if (context.rm) rmLoss = await updateRewardModel(context, rewardModel, batch, refLogprobs, acc);
      timing.rmUpdate = seconds(updateStart);
    };
    if (config.rewardModel.update === 'before') await update();
    phase = performance.now();
    const scores =
      estimator.needs === 'outcome' ? undefined : await scoreBatch(context, rewardModel, estimator.needs, batch, candidates, refLogprobs);
    if (scores) timing.rmScore = seconds(phase);
    phase = performance.now();
    advantages = estimator.estimate({ ...input, ...scores?.rewards });
    timing.adv = seconds(phase);
    if (scores) {
      const sampled = scores.rewards.tokenLogRatio ?? scores.rewards.candidateTd?.map((row) => row.map((cell) => cell[0]));
      if (sampled) rmAccuracy = outcomeAccuracy(sampled, input.mask, acc);
      rmScore = scores.rmScore;
    }
    if (config.rewardModel.update === 'after') await update();
  }
  const scaledCandidateTd = advantages.candidateAdvantages
    ? Tensor.from(Float32Array.from(advantages.candidateAdvantages.flat(2)), candidates.oldTopkLogprobs.shape, { device: batch.device })
    : Tensor.zeros(candidates.oldTopkLogprobs.shape, { device: batch.device });

  // 4. PPO on the policy: Σ coef × policy loss (Tok-PPO on the sampled tokens, Dist-PPO on the candidates, from one
  // fused pass), one optimizer step per mini-batch.
  phase = performance.now();
  const advantageTensor = Tensor.from(Float32Array.from(advantages.advantages.flat()), batch.mask.shape, { device: batch.device });
  const sums = { loss: 0, pgLoss: 0, topkPgLoss: 0, entropy: 0, pgClipfrac: 0, topkPgClipfrac: 0, ppoKl: 0 };
  let micros = 0;
  let gradNorm = 0;
  for (const miniBatch of batch.miniBatches(actor.miniBatches)) {
    ({ gradNorm } = await context.actor.step(miniBatch, { lr: actor.lr, maxGradNorm: actor.maxGradNorm, signal }, async (rows) => {
      const rowMask = batch.take(batch.mask, rows);
      const candidateIndices = batch.take(candidates.candidateIndices, rows);
      // verl: loss = pg − entropy_coeff · token-mean entropy (a metric only when the coefficient is 0).
      const bonus = actor.entropyCoeff > 0;
      const { policy, tokenEntropies } = await policyOutputs(
        await batch.responseOutput(models.policy, rows, { signal }),
        candidateIndices,
        bonus,
        r.temperature,
        signal,
      );
      const out = await distrlLoss(
        {
          ...policy,
          candidateIndices,
          oldLogProb: batch.take(candidates.oldLogProb, rows),
          oldTopkLogprobs: batch.take(candidates.oldTopkLogprobs, rows),
          candidateMask: batch.take(candidates.candidateMask, rows),
          advantages: batch.take(advantageTensor, rows),
          scaledCandidateTd: batch.take(scaledCandidateTd, rows),
          mask: rowMask,
          clipRatioLow: actor.clipRatioLow,
          clipRatioHigh: actor.clipRatioHigh,
          clipRatioC: actor.clipRatioC,
          dualClip: actor.dualClip,
          cliprangeTopk: actor.cliprangeTopk,
          alpha: 0, // the actor's loss is built below from the registered terms
          temperature: r.temperature,
          conventions: config.conventions,
        },
        { signal },
      );
      const policyLoss = losses.map(({ loss, coef }) => loss.term(out).mul(coef)).reduce((sum, term) => sum.add(term));
      const entropy = tokenEntropies.mul(rowMask).sum().div(rowMask.sum().add(1e-8));
      const loss = bonus ? policyLoss.sub(entropy.mul(actor.entropyCoeff)) : policyLoss;
      await loss.div(miniBatch.length).backwardAsync(undefined, { signal });
      sums.loss += loss.item();
      sums.entropy += entropy.item();
      sums.pgLoss += out.pgLoss.item();
      sums.topkPgLoss += out.topkPgLoss.item();
      sums.pgClipfrac += out.pgClipfrac;
      sums.topkPgClipfrac += out.topkPgClipfrac;
      sums.ppoKl += out.ppoKl;
      micros++;
    }));
  }
  // The terms' sums over every rank's micro-batches.
  const keys = Object.keys(sums) as (keyof typeof sums)[];
  const reduced = await group.allReduceNumbers([...keys.map((key) => sums[key]), micros], 'sum', { signal });
  keys.forEach((key, i) => (sums[key] = reduced[i]));
  micros = reduced[keys.length];
  timing.updateActor = seconds(phase);

  const mean = (x: number) => x / micros;
  const lengths = batch.rows.map((x) => x.response_ids.length);
  return {
    step,
    accuracy: rollouts.reduce((a, x) => a + x.score, 0) / rollouts.length,
    mixedFraction: sampledGroups.filter((group) => isMixed(group, MIXED_ACCURACY_BOUNDS)).length / sampledGroups.length,
    sequences: batch.rows.length,
    meanResponseLength: lengths.reduce((a, x) => a + x, 0) / lengths.length,
    maxResponseLength: Math.max(...lengths),
    responseClipRatio: lengths.filter((length) => length >= r.maxNewTokens).length / lengths.length,
    rolloutLogprobDiff,
    rmLoss,
    rmAccuracy,
    rmScore,
    advantages: maskedStats(advantages.advantages, input.mask),
    ...candidateStats,
    loss: mean(sums.loss),
    pgLoss: mean(sums.pgLoss),
    topkPgLoss: mean(sums.topkPgLoss),
    entropy: mean(sums.entropy),
    pgClipfrac: mean(sums.pgClipfrac),
    topkPgClipfrac: mean(sums.topkPgClipfrac),
    ppoKl: mean(sums.ppoKl),
    gradNorm,
    lr: actor.lr,
    tokens: rollouts.reduce((a, x) => a + x.prompt_ids.length + x.response_ids.length, 0),
    timing,
  };
}

/** Mean, max and min of `values` where `mask` is 1. */
function maskedStats(values: Matrix, mask: Matrix): { mean: number; max: number; min: number } {
  let [sum, count, max, min] = [0, 0, -Infinity, Infinity];
  values.forEach((row, b) =>
    row.forEach((v, t) => {
      if (mask[b][t] === 0) return;
      [sum, count, max, min] = [sum + v, count + 1, Math.max(max, v), Math.min(min, v)];
    }),
  );
  return count === 0 ? { mean: 0, max: 0, min: 0 } : { mean: sum / count, max, min };
}

/** Mean and largest |sampler's log-prob − π_old's| over the rows' response tokens; undefined when the sampler gave none. */
function logprobDiff(rows: readonly Rollout[], oldLogProb: Tensor): { mean: number; max: number } | undefined {
  const old = oldLogProb.toNested() as number[][];
  let [sum, count, max] = [0, 0, 0];
  for (const [b, row] of rows.entries()) {
    for (const [t, logprob] of row.logprobs.entries()) {
      if (!Number.isFinite(logprob)) return undefined;
      const difference = Math.abs(logprob - old[b][t]);
      [sum, count, max] = [sum + difference, count + 1, Math.max(max, difference)];
    }
  }
  return count === 0 ? undefined : { mean: sum / count, max };
}

/** Mean size and π_old mass of the candidate sets over response tokens (Table 11). */
function candidateSetStats(
  candidates: { candidateMask: Tensor; oldTopkLogprobs: Tensor },
  mask: Tensor,
): { candidateSize: number; candidateCoverage: number } {
  return tidy(() => {
    const tokens = mask.sum().item();
    const size = candidates.candidateMask.sum(-1).mul(mask).sum().item();
    const coverage = candidates.oldTopkLogprobs.exp().mul(candidates.candidateMask).sum(-1).mul(mask).sum().item();
    return { candidateSize: size / Math.max(1, tokens), candidateCoverage: coverage / Math.max(1, tokens) };
  });
}

/**
 * The reward model's rewards on the batch, as the estimator needs them (token log ratios, or TD at the candidates),
 * and the RM score of eq. 19 (the mean per-token log π_φ/π_ref of each response, averaged over the batch).
 */
async function scoreBatch(
  context: StepContext,
  rewardModel: RewardModel,
  needs: RewardScoreInput['needs'],
  batch: RolloutBatch,
  candidates: { candidateIndices: Tensor; oldTopkLogprobs: Tensor },
  refLogprobs: Tensor,
): Promise<{ rewards: Pick<AdvantageInput, 'tokenLogRatio' | 'candidateTd'>; rmScore: number }> {
  const { config, models, options } = context;
  const signal = options.signal;
  const frozen = config.rewardModel.reference === 'frozen';
  const scores = await batch.concatMicro(async (rows) => {
    const rm = await batch.responseOutput(models.rewardModel!, rows, { noGrad: true, signal });
    const tokens = batch.take(batch.tokens, rows);
    const mask = batch.take(batch.mask, rows);
    const rowRefLogprobs = batch.take(refLogprobs, rows);
    // Eq. 19 per row: the response's mean log π_φ/π_ref at its sampled tokens.
    const rowScore = (sampledRatio: Tensor) => sampledRatio.mul(mask).sum(-1).div(mask.sum(-1));
    const input: RewardScoreInput = { needs, rm, tokens, mask, beta: config.rewardModel.beta, temperature: config.rollout.temperature };
    if (needs === 'token-rewards') {
      // The token rewards are that log ratio already.
      const { tokenLogRatio } = await rewardModel.score({ ...input, refLogprobs: rowRefLogprobs }, { signal });
      return { rmScore: rowScore(tokenLogRatio!), tokenLogRatio: tokenLogRatio! };
    }
    const rmScore = rowScore((await outputLogprobs(rm, tokens.unsqueeze(-1), { signal })).squeeze(-1).sub(rowRefLogprobs));
    // The TD β·log π_φ/π_ref at the candidates, against the reference the reward model trains against.
    const candidateIndices = batch.take(candidates.candidateIndices, rows);
    const refTopkLogprobs = frozen
      ? await outputLogprobs(await batch.responseOutput(models.reference!, rows, { noGrad: true, signal }), candidateIndices, { signal })
      : batch.take(candidates.oldTopkLogprobs, rows);
    return { rmScore, candidateTd: (await rewardModel.score({ ...input, candidateIndices, refTopkLogprobs }, { signal })).candidateTd! };
  });
  const rmScore = scores.rmScore.mean().item();
  return needs === 'token-rewards'
    ? { rmScore, rewards: { tokenLogRatio: (scores as { tokenLogRatio: Tensor }).tokenLogRatio.toNested() as Matrix } }
    : { rmScore, rewards: { candidateTd: (scores as { candidateTd: Tensor }).candidateTd.toNested() as number[][][] } };
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
  const rmConfig = config.rewardModel;
  const groupSize = config.rollout.samples;
  const signal = options.signal;
  const accTensor = Tensor.from(Float32Array.from(acc), [acc.length], { device: batch.device });
  let total = 0;
  let steps = 0;
  for (const miniBatch of batch.miniBatches(rmConfig.miniBatches)) {
    const stepAcc = acc.slice(miniBatch[0][0], miniBatch[miniBatch.length - 1][1]);
    if (rewardModel.learnsFrom && !rewardModel.learnsFrom(stepAcc, groupSize)) continue;
    const { outputs } = await context.rm!.step(miniBatch, { lr: rmConfig.lr, maxGradNorm: rmConfig.maxGradNorm, signal }, async (rows) => {
      const share = await rewardModel.update(
        {
          ...(await batch.rewardModelInput(models.rewardModel!, rows, refLogprobs, signal)),
          tokens: batch.take(batch.tokens, rows),
          refLogprobs: batch.take(refLogprobs, rows),
          mask: batch.take(batch.mask, rows),
          acc: batch.take(accTensor, rows),
          groupSize,
          step: { microBatches: miniBatch.length, acc: stepAcc },
        },
        { ...rmConfig, conventions: config.conventions },
        { signal },
      );
      await share.backwardAsync(undefined, { signal });
      return share.item();
    });
    total += outputs.reduce((a, x) => a + x, 0);
    steps++;
  }
  if (steps === 0) return undefined;
  const [sum] = await context.group.allReduceNumbers([total], 'sum', { signal });
  return sum / steps;
}

/** Share of rows whose summed reward over the response has the outcome's sign (> 0 for a correct one). */
function outcomeAccuracy(rewards: Matrix, mask: Matrix, acc: readonly number[]): number {
  const right = rewards.filter((row, b) => row.reduce((sum, v, t) => sum + v * mask[b][t], 0) > 0 === acc[b] > 0.5).length;
  return right / rewards.length;
}

/**
 * Whether a group's mean outcome lies within the bounds, both included as in the reference's filter (which fails a
 * group only when its mean is above the upper bound or below the lower). With MIXED_ACCURACY_BOUNDS: mixed outcomes.
 */
const isMixed = (group: readonly Rollout[], [low, high]: readonly [number, number]) => {
  const mean = group.reduce((a, x) => a + x.score, 0) / group.length;
  return mean >= low && mean <= high;
};

/**
 * The reference's filter_and_downsample: groups whose mean outcome lies inside `bounds`, bounds included (default
 * [0.01, 0.99]: mixed outcomes), with no truncated response come first, then the rest, in sampling order; the first
 * `count` are kept, so the others train only when the first kind runs short.
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
  state(): { rng: number; order: number[] } {
    return { rng: this.rng.state, order: [...this.order] };
  }
  restore(state: Record<string, unknown>): void {
    this.rng.restore(stateField<number>(state, 'rng', Number.isInteger));
    this.order = stateField<number[]>(
      state,
      'order',
      (v) => Array.isArray(v) && v.every((i) => Number.isInteger(i) && i >= 0 && i < this.records.length),
    );
  }
}

/**
 * π_θ's log-probs at the candidates (slot 0: the sampled token) and its token entropies, from its output: through the
 * fused head in one streamed pass, or from the logits. The entropies carry their graph only for the bonus.
 */
async function policyOutputs(
  output: Tensor | HeadInput,
  candidateIndices: Tensor,
  bonus: boolean,
  temperature: number,
  signal?: AbortSignal,
): Promise<{ policy: Pick<DistrlLossInputs, 'newLogits' | 'logProb' | 'policyTopkLogprobs'>; tokenEntropies: Tensor }> {
  if (output instanceof Tensor) {
    const tokenEntropies = await tokenEntropy(bonus ? output : output.detach(), { temperature, signal });
    return { policy: { newLogits: output }, tokenEntropies };
  }
  const { logprobs, entropy } = await headLogprobsAndEntropy(output.hidden, output.weight, candidateIndices, {
    temperature,
    signal,
    lora: output.lora,
    entropyGradient: bonus,
  });
  return { policy: { logProb: logprobs.select(-1, 0), policyTopkLogprobs: logprobs }, tokenEntropies: bonus ? entropy : entropy.detach() };
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
    /** Where its tensors live: the policy's device. */
    readonly device: DeviceName,
    /** Whether the models' outputs go through the fused LM head (config.fusedHead) or as logits. */
    readonly fusedHead = true,
    /** The ranks that share its micro-batches (concatMicro). */
    private readonly group: ProcessGroup = SINGLE_PROCESS,
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
    this.inputIds = Tensor.from(ids, [B, P + R], { device });
    this.attentionMask = Tensor.from(attention, [B, P + R], { device });
    this.tokens = Tensor.from(tokens, [B, R], { device });
    this.mask = Tensor.from(mask, [B, R], { device });
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

  /**
   * `model`'s output at the response positions (position P − 1 + t predicts response token t; the prompt's are never
   * computed): its head input [rows, R, H] with the head's weight, for the fused head, or its logits [rows, R, V].
   */
  async responseOutput(model: CausalLM, rows: [number, number], options: { noGrad?: boolean; signal?: AbortSignal }): Promise<Tensor | HeadInput> {
    const positions = { start: this.promptLength - 1, length: this.responseLength };
    const [ids, attention] = [this.take(this.inputIds, rows), this.take(this.attentionMask, rows)];
    return this.fusedHead ? model.headInput(ids, attention, { ...options, positions }) : model.forward(ids, attention, { ...options, positions });
  }

  /**
   * The reward model's side of an online update, with its graph: through the fused head the log ratio
   * log π_φ − log π_ref at the sampled tokens (π_φ's log-probs in float64, the difference rounded once, as the
   * objectives do from logits), else π_φ's logits.
   */
  async rewardModelInput(
    model: CausalLM,
    rows: [number, number],
    refLogprobs: Tensor,
    signal?: AbortSignal,
  ): Promise<{ logits?: Tensor; logRatio?: Tensor }> {
    const output = await this.responseOutput(model, rows, { signal });
    if (output instanceof Tensor) return { logits: output };
    const index = this.take(this.tokens, rows).unsqueeze(-1);
    const policy = (await headLogprobs(output.hidden, output.weight, index, { float64: true, signal, lora: output.lora })).squeeze(-1);
    return { logRatio: policy.sub(this.take(refLogprobs, rows).to('float64')).to('float32') };
  }

  /** log π(sampled token) of a model on every row, no graph, [B, R] (0 at padding). */
  async sampledLogprobs(model: CausalLM, signal?: AbortSignal): Promise<Tensor> {
    const { logprobs } = await this.concatMicro(async (rows) => {
      const output = await this.responseOutput(model, rows, { noGrad: true, signal });
      const index = this.take(this.tokens, rows).unsqueeze(-1);
      return { logprobs: (await outputLogprobs(output, index, { signal })).squeeze(-1).mul(this.take(this.mask, rows)) };
    });
    return logprobs;
  }

  /**
   * Runs `fn` on each micro-batch and concatenates each tensor it returns along the batch (other values are
   * dropped). Over ranks, each runs its contiguous share of the micro-batches and the results are gathered, so every
   * rank holds the whole batch's tensors.
   */
  async concatMicro<O extends object>(fn: (rows: [number, number]) => Promise<O>): Promise<{ [K in keyof O]: Tensor }> {
    const micros = this.miniBatches(1)[0];
    const [start, end] = shareOf(micros.length, this.group);
    const parts: Record<string, Tensor>[] = [];
    for (const micro of micros.slice(start, end)) {
      const out = await tidy(async () => {
        const result = await fn(micro);
        return Object.fromEntries(Object.entries(result).filter(([, v]) => v instanceof Tensor)) as Record<string, Tensor>;
      });
      parts.push(out);
    }
    const local = Object.fromEntries(
      Object.keys(parts[0] ?? {}).map((key) => [
        key,
        Tensor.cat(
          parts.map((p) => p[key]),
          0,
        ),
      ]),
    );
    if (this.group.worldSize === 1) return local as { [K in keyof O]: Tensor };
    // A rank without a micro-batch sends empty tensors of the others' layout (the first rank's with one).
    const layouts = await this.group.allGatherObjects(Object.entries(local).map(([key, t]) => ({ key, dtype: t.dtype, shape: t.shape })));
    const layout = layouts.find((l) => l.length > 0)!;
    const out: Record<string, Tensor> = {};
    for (const { key, dtype, shape } of layout) {
      const mine = local[key] ?? Tensor.zeros([0, ...shape.slice(1)], { dtype, device: this.device });
      const gathered = await this.group.allGather(mine);
      out[key] = Tensor.cat(
        gathered.map((t) => t.to(this.device)),
        0,
      );
    }
    return out as { [K in keyof O]: Tensor };
  }
}
