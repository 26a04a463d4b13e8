// Typed access to the native fused objectives (native/ops). Each call runs on the compute thread and returns a
// Promise; returned tensors join the current `tidy` scope. Losses keep their autograd graph: call
// `loss.backward()` (or `backwardAsync`) to reach the logits. Conventions: implemented-math.md.
import { addon } from '../native/addon.js';
import { withCancel } from '../tensor/cancel.js';
import { Tensor, type AsyncOptions } from '../tensor/tensor.js';

export type Conventions = 'reference' | 'paper';

type Inputs = Record<string, Tensor | number | boolean | string | undefined>;
type Outputs = Record<string, Tensor | number>;

/** Runs a native objective by name (see `listObjectives()`), converting tensors both ways. */
export async function runObjective<O>(name: string, inputs: Inputs, options: AsyncOptions = {}): Promise<O> {
  const native: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(inputs)) {
    if (value !== undefined) native[key] = value instanceof Tensor ? value.native : value;
  }
  const raw = await withCancel(options.signal, (token) => addon().objective(name, native, token));
  const out: Outputs = {};
  for (const [key, value] of Object.entries(raw)) out[key] = typeof value === 'number' ? value : Tensor.wrap(value);
  return out as unknown as O;
}

export function listObjectives(): string[] {
  return addon().listObjectives();
}

/** Policy and reference sides of the implicit reward lr_t = log π_φ(y_t) − log π_ref(y_t). */
export interface LogRatioInputs {
  /** π_φ logits [B, T, V] (shifted layout: logits[b, t] predicts tokens[b, t]); gradients flow to them. */
  logits?: Tensor;
  /** π_ref logits [B, T, V], or its log-probs at the tokens [B, T]. */
  refLogits?: Tensor;
  refLogprobs?: Tensor;
  tokens?: Tensor;
  /** Or the log ratios themselves [B, T] (then logits/tokens are not needed). */
  logRatio?: Tensor;
  /** Response mask [B, T]: 1 on response tokens (EOS included), 0 on prompt and padding. */
  mask: Tensor;
  /**
   * Backward writes the logits' gradient into the logits' own memory: no [N, V] allocation, but the logits are
   * consumed (use it when nothing reads them after backward, e.g. an LM head's output). Default false.
   */
  inplaceBackward?: boolean;
}

export interface LogRatioOutputs {
  logRatio: Tensor;
  policyLogprobs?: Tensor;
  refLogprobs?: Tensor;
}

export interface PrefixValueOutputs extends LogRatioOutputs {
  /** V_t = β Σ_{i≤t} lr_i */
  prefixValues: Tensor;
  /** v̄_t = V_t / t (t counts response tokens) */
  normalizedPrefixValues: Tensor;
  /** v̄ at each row's last response token */
  finalScores: Tensor;
}

/** The prefix-value op: log ratios, V and v̄ (no loss). */
export function prefixValues(inputs: LogRatioInputs & { beta?: number }, options?: AsyncOptions): Promise<PrefixValueOutputs> {
  return runObjective('prefix_values', { ...inputs }, options);
}

/** log softmax(logits / temperature) gathered at `index` [..., K]: fused forward and backward. */
export async function tokenLogprobs(
  logits: Tensor,
  index: Tensor,
  options: AsyncOptions & { temperature?: number; inplaceBackward?: boolean } = {},
): Promise<Tensor> {
  const { temperature, inplaceBackward } = options;
  const out = await runObjective<{ logprobs: Tensor }>('token_logprobs', { logits, index, temperature, inplaceBackward }, options);
  return out.logprobs;
}

/**
 * A LoRA adapter on the LM head as the fused head takes it, a low-rank term of the logits: hidden · Wᵀ + hidden_r · Bᵀ
 * with hidden_r = scale · hidden · Aᵀ [..., r] and B [V, r] (CausalLM.headInput computes both, differentiable).
 */
export interface HeadLora {
  hidden: Tensor;
  weight: Tensor;
}

/**
 * An LM head's input: hidden states [..., H], the head's weight [V, H] and, with a LoRA on the head, its low-rank
 * term (CausalLM.headInput), for the fused head.
 */
export interface HeadInput {
  hidden: Tensor;
  weight: Tensor;
  lora?: HeadLora;
}

/** A HeadInput as the distrl objectives take it: `hiddenKey` (oldHidden, rmHidden), headWeight, loraHidden, loraWeight. */
export function headInputFields<K extends string>(hiddenKey: K, input: HeadInput): Record<K | 'headWeight', Tensor> & HeadLoraFields {
  return { [hiddenKey]: input.hidden, headWeight: input.weight, ...loraFields(input.lora) } as Record<K | 'headWeight', Tensor> & HeadLoraFields;
}

/** The head's LoRA term under the objectives' keys. */
export interface HeadLoraFields {
  loraHidden?: Tensor;
  loraWeight?: Tensor;
}

const loraFields = (lora: HeadLora | undefined): HeadLoraFields => (lora ? { loraHidden: lora.hidden, loraWeight: lora.weight } : {});

export interface HeadLogprobsOptions extends AsyncOptions {
  /** A LoRA adapter on the head (HeadInput.lora). */
  lora?: HeadLora;
  temperature?: number;
  /** Vocabulary rows per streamed chunk (default 4096): peak extra memory is about two [N, chunkSize] buffers. */
  chunkSize?: number;
  /** Return the log-probs in float64, not rounded to float32 (for differences of log-probs). */
  float64?: boolean;
}

/**
 * The fused LM head: log softmax(hidden · Wᵀ / temperature) gathered at `index` [..., K], from hidden states
 * [..., H] and the head's weight [V, H] (same dtype), without building [N, V] logits: the vocabulary is streamed
 * `chunkSize` rows at a time, and the backward recomputes each chunk's logits. Gradients reach hidden and weight.
 * A frozen head (the weight, and a LoRA's B, not requiring grad: a LoRA actor's) skips the recompute: the forward
 * accumulates the softmax's expectation of the head's rows, and the backward needs no logits (two head GEMMs instead
 * of three; PREFIX_RL_HEAD_RECOMPUTE=1 turns this off, for comparison). float32 out (float64 for float64 inputs or
 * with `float64`).
 */
export async function headLogprobs(hidden: Tensor, weight: Tensor, index: Tensor, options: HeadLogprobsOptions = {}): Promise<Tensor> {
  const { temperature, chunkSize, float64, lora } = options;
  const inputs = { hidden, weight, ...loraFields(lora), index, temperature, chunkSize, float64 };
  const out = await runObjective<{ logprobs: Tensor }>('head_logprobs', inputs, options);
  return out.logprobs;
}

/**
 * headLogprobs plus the token entropy [...] of softmax(hidden · Wᵀ / temperature), from the same streamed pass
 * (forward and backward): PPO's log-probs and entropy bonus for the price of the log-probs alone. `entropyGradient:
 * false` promises that the entropy's gradient will not be taken (a metric only), which lets a frozen head skip the
 * backward's recompute; a gradient taken anyway is still right, at the recompute's cost.
 */
export function headLogprobsAndEntropy(
  hidden: Tensor,
  weight: Tensor,
  index: Tensor,
  options: HeadLogprobsOptions & { entropyGradient?: boolean } = {},
): Promise<{ logprobs: Tensor; entropy: Tensor }> {
  const { temperature, chunkSize, float64, lora, entropyGradient } = options;
  return runObjective(
    'head_logprobs',
    { hidden, weight, ...loraFields(lora), index, temperature, chunkSize, float64, entropy: true, entropyGradient },
    options,
  );
}

/**
 * log-probs at `index` [..., K] of a model output: its logits [..., V] (tokenLogprobs) or its head input
 * (headLogprobs, no logits built).
 */
export function outputLogprobs(
  output: Tensor | HeadInput,
  index: Tensor,
  options: AsyncOptions & { temperature?: number; chunkSize?: number } = {},
): Promise<Tensor> {
  return output instanceof Tensor
    ? tokenLogprobs(output, index, options)
    : headLogprobs(output.hidden, output.weight, index, { ...options, lora: output.lora });
}

/**
 * Entropy of softmax(logits / temperature) at every position ([..., V] → [...]), differentiable: PPO's entropy bonus.
 * Fused on the CPU (the row's logsumexp, then Σ p·(lse − z); one pass backward); other devices compose ATen ops.
 */
export async function tokenEntropy(logits: Tensor, options: AsyncOptions & { temperature?: number } = {}): Promise<Tensor> {
  const out = await runObjective<{ entropy: Tensor }>('token_entropy', { logits, temperature: options.temperature }, options);
  return out.entropy;
}

export type IpvrmWeighting = 'token_mean' | 'uniform' | 'early' | 'late';

export interface IpvrmOfflineInputs extends LogRatioInputs {
  /** Outcome labels y_b ∈ {0, 1} [B]. */
  labels: Tensor;
  beta?: number;
  margin?: number;
  /** reference: token-mean over the batch; paper: uniform per-sequence mean (eq. 9). */
  conventions?: Conventions;
  /** Overrides conventions: token_mean (reference) or the paper's uniform / early / late (eq. 9, 17, 18). */
  weighting?: IpvrmWeighting;
}

export interface IpvrmOfflineOutputs extends PrefixValueOutputs {
  /** v̄ at index L_b − 1 as the reference computes it (the last token only when responses start at t = 0). */
  finalScores: Tensor;
  /** v̄ at each row's last response token. */
  lastScores: Tensor;
  loss: Tensor;
  perTokenLoss: Tensor;
  prefixAccuracy: Tensor;
  /** Per-sequence losses (paper weightings only). */
  seqLoss?: Tensor;
}

/** Offline IPVRM: BCE with margin m on every prefix's v̄_t against the outcome. Defaults β=1, m=0 (reference CLI). */
export function ipvrmOffline(inputs: IpvrmOfflineInputs, options?: AsyncOptions): Promise<IpvrmOfflineOutputs> {
  const { conventions, weighting, ...rest } = inputs;
  return runObjective('ipvrm_offline', { ...rest, weighting: weighting ?? (conventions === 'paper' ? 'uniform' : 'token_mean') }, options);
}

/** Prompt groups of the online objectives: contiguous blocks of `groupSize`, or explicit `groupIds` [B]. */
export interface GroupInputs {
  acc: Tensor;
  groupSize?: number;
  groupIds?: Tensor;
  /** Order of samples within a group (online DPO pairs the first k positives with the first k negatives). */
  sampleRank?: Tensor;
}

/** The group-weighted online losses (IPVRM, Implicit PRM). */
export interface GroupWeightInputs {
  /** Adaptive decision boundary: margin m ∓ logit(μ) (default true). */
  useAdb?: boolean;
  /** Distribution-level weights: rarer outcomes weigh more (default true). */
  useDlw?: boolean;
  /** Groups with one outcome at weight 1 and margin m instead of the reference's weight 0 (default false). */
  trainUniformGroups?: boolean;
  /** reference: DLW rescaled within the group to Σw = n (each outcome class weighs n/2); paper: 1 − μ and μ as in §3.3. */
  conventions?: Conventions;
}

export interface IpvrmOnlineInputs extends LogRatioInputs, GroupInputs, GroupWeightInputs {
  beta?: number;
  margin?: number;
}

export interface OnlineTerms {
  weights: Tensor;
  margins: Tensor;
}

export interface IpvrmOnlineOutputs extends LogRatioOutputs, OnlineTerms {
  loss: Tensor;
  lossPerSeq: Tensor;
  logitsPerToken: Tensor;
}

/** Online IPVRM with ADB and DLW. Defaults β=10, m=5 (distrl_config.yaml). */
export function ipvrmOnline(inputs: IpvrmOnlineInputs, options?: AsyncOptions): Promise<IpvrmOnlineOutputs> {
  return runObjective('ipvrm_online', { ...inputs }, options);
}

export interface ImplicitPrmInputs extends LogRatioInputs {
  labels: Tensor;
  beta?: number;
  /** bce_logits (IPVRM / ImplicitPRM) or prime (sigmoid + BCE with log clamped at −100). */
  form?: 'bce_logits' | 'prime';
}

export interface ImplicitPrmOutputs extends LogRatioOutputs {
  loss: Tensor;
  seqLogits: Tensor;
}

/** Implicit PRM cross-entropy on z = β Σ lr. Default β=0.05. */
export function implicitPrmCe(inputs: ImplicitPrmInputs, options?: AsyncOptions): Promise<ImplicitPrmOutputs> {
  return runObjective('implicit_prm_ce', { ...inputs }, options);
}

export interface ImplicitPrmOnlineInputs extends LogRatioInputs, GroupInputs, GroupWeightInputs {
  beta?: number;
  margin?: number;
  /** bce: weighted BCE-with-logits; adb: −log σ(z·s − margin). */
  form?: 'bce' | 'adb';
}

export function implicitPrmOnline(inputs: ImplicitPrmOnlineInputs, options?: AsyncOptions): Promise<ImplicitPrmOutputs & OnlineTerms> {
  return runObjective('implicit_prm_online', { ...inputs }, options);
}

export interface DpoRmInputs extends LogRatioInputs {
  beta?: number;
  gamma?: number;
  /** sum: DPO-RM (the release's bt_sum); mean: length-normalised (its bt_mean). Rows [0, B/2) chosen, [B/2, B) rejected. */
  reduction?: 'sum' | 'mean';
}

export interface DpoRmOutputs extends LogRatioOutputs {
  loss: Tensor;
  pairLogits: Tensor;
  seqRewards: Tensor;
}

export function dpoRm(inputs: DpoRmInputs, options?: AsyncOptions): Promise<DpoRmOutputs> {
  return runObjective('dpo_rm', { ...inputs }, options);
}

export interface DpoOnlineOutputs extends LogRatioOutputs {
  loss: Tensor;
  lossSum: Tensor;
  pairLogits: Tensor;
  chosenIdx: Tensor;
  rejectedIdx: Tensor;
}

/** Online DPO-RM pairs within prompt groups; `loss` is the mean over pairs. */
export function dpoOnline(inputs: LogRatioInputs & GroupInputs & { beta?: number }, options?: AsyncOptions): Promise<DpoOnlineOutputs> {
  return runObjective('dpo_online', { ...inputs }, options);
}

export interface CandidateInputs extends HeadLoraFields {
  /**
   * π_old's logits [B, T, V], or its hidden states [B, T, H] with the head's weight [V, H] and a LoRA's term (fused
   * head, chunkSize rows at a time; headInputFields('oldHidden', model.headInput(...)) gives them).
   */
  oldLogits?: Tensor;
  oldHidden?: Tensor;
  headWeight?: Tensor;
  chunkSize?: number;
  tokens: Tensor;
  mask: Tensor;
  k?: number;
  minP?: number;
  topP?: number;
  temperature?: number;
  /** reference: top-K + forced sampled token, strict P_min, last position excluded; paper: all tokens ≥ P_min. */
  conventions?: Conventions;
}

export interface CandidateOutputs {
  candidateIndices: Tensor;
  oldTopkLogprobs: Tensor;
  candidateMask: Tensor;
  oldLogProb: Tensor;
}

export function distrlCandidates(inputs: CandidateInputs, options?: AsyncOptions): Promise<CandidateOutputs> {
  return runObjective('distrl_candidates', { ...inputs }, options);
}

export interface DistrlTdInputs extends HeadLoraFields {
  /**
   * π_φ's logits [B, T, V], or its hidden states with the head's weight and a LoRA's term (fused head:
   * headInputFields('rmHidden', ...)), or its log-probs at the candidates.
   */
  rmLogits?: Tensor;
  rmHidden?: Tensor;
  headWeight?: Tensor;
  chunkSize?: number;
  rmTopkLogprobs?: Tensor;
  candidateIndices?: Tensor;
  oldTopkLogprobs: Tensor;
  mask: Tensor;
  beta?: number;
  temperature?: number;
  /** Zero the TD from each row's last response token on (reference, default true). */
  zeroLast?: boolean;
}

export interface DistrlTdOutputs {
  rmTopkLogprobs: Tensor;
  candidateTd: Tensor;
  stepRewards: Tensor;
}

export function distrlTd(inputs: DistrlTdInputs, options?: AsyncOptions): Promise<DistrlTdOutputs> {
  return runObjective('distrl_td', { ...inputs }, options);
}

export interface DistrlLossInputs {
  /** π_θ logits [B, T, V] with the candidate indices, or the log-probs directly. */
  newLogits?: Tensor;
  candidateIndices?: Tensor;
  /** See LogRatioInputs.inplaceBackward: the new logits receive their own gradient. */
  inplaceBackward?: boolean;
  logProb?: Tensor;
  policyTopkLogprobs?: Tensor;
  oldLogProb: Tensor;
  oldTopkLogprobs: Tensor;
  candidateMask: Tensor;
  /** Sampled-token advantages [B, T] (GRPO + GAE) and candidate advantages Â [B, T, K]. */
  advantages: Tensor;
  scaledCandidateTd: Tensor;
  mask: Tensor;
  clipRatioLow?: number;
  clipRatioHigh?: number;
  clipRatioC?: number;
  /** The dual clip at c for negative advantages (default true under the reference conventions; never under the paper's). */
  dualClip?: boolean;
  cliprangeTopk?: number;
  /** Weight of the Dist-PPO term (0 gives GRPO/PPO on sampled tokens only). */
  alpha?: number;
  temperature?: number;
  conventions?: Conventions;
}

export interface DistrlLossOutputs {
  loss: Tensor;
  pgLoss: Tensor;
  topkPgLoss: Tensor;
  pgLossesMat: Tensor;
  topkPgLossesMat: Tensor;
  logProb: Tensor;
  policyTopkLogprobs: Tensor;
  pgClipfrac: number;
  ppoKl: number;
  /** The reference repo's metric, kept for parity: always 0 (see implemented-math.md §7.15). */
  pgClipfracLower: number;
  /** Fraction of tokens where the dual clip is active (what pgClipfracLower meant to measure). */
  pgClipfracDual: number;
  topkPgClipfrac: number;
  topkPpoKl: number;
  topkPgClipfracLower: number;
  topkPgClipfracDual: number;
}

/** Tok-PPO + α·Dist-PPO. Defaults: ε 0.2/0.28, c 3, symmetric 0.2 for candidates, α 0.1. */
export function distrlLoss(inputs: DistrlLossInputs, options?: AsyncOptions): Promise<DistrlLossOutputs> {
  return runObjective('distrl_loss', { ...inputs }, options);
}
