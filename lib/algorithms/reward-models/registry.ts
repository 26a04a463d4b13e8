// The reward-model registry: the implicit reward models an RL run can train online (config.rewardModel.kind). Each
// entry has its online loss, `update`, and `score`: its rewards on a batch against the configured reference (π_old,
// or a frozen model). All three models here are implicit — the reward is β·log π_φ/π_ref — so they share
// implicitScore and differ in what they learn from the outcomes. A new model is one file plus one import line in
// index.ts.
import { distrlTd, headInputFields, outputLogprobs, type Conventions, type HeadInput } from '../../ops/objectives.js';
import { Tensor, type AsyncOptions } from '../../tensor/index.js';
import { Registry } from '../../util/registry.js';

export interface RewardModelSettings {
  beta: number;
  /** IPVRM's margin m (and the online Implicit PRM's, with ADB). */
  margin: number;
  useAdb: boolean;
  useDlw: boolean;
  /** Groups with one outcome: skip (weight 0, the reference) or train (weight 1, margin m) — IPVRM and online Implicit PRM. */
  uniformGroups: 'skip' | 'train';
  /** Implicit PRM: 'ce' — PRIME's cross-entropy on every row; 'online' — the IPVRM release's group-weighted BCE (ADB form with useAdb). */
  implicitPrmLoss: 'ce' | 'online';
  /** DPO-RM over each group's (correct, incorrect) pairs: the mean over the step's pairs (the release's online DPO) or their sum. */
  dpoReduction: 'mean' | 'sum';
  /** The run's conventions: with paper, DLW keeps the paper's weights 1 − μ and μ (the reference rescales them). */
  conventions: Conventions;
}

/** One micro-batch of the reward model's optimizer step: whole prompt groups of `groupSize` contiguous rows. */
export interface RewardModelBatch {
  /**
   * π_φ with its graph, one of two ways: its logits at the response positions [b, R, V], or (through the fused LM
   * head, no logits built) the log ratio log π_φ − log π_ref at the sampled tokens [b, R]. The objectives take either.
   */
  logits?: Tensor;
  logRatio?: Tensor;
  /** Response tokens [b, R] and mask [b, R]. */
  tokens: Tensor;
  mask: Tensor;
  /** log π_ref of the sampled tokens [b, R]. */
  refLogprobs: Tensor;
  /** The rows' outcomes [b]. */
  acc: Tensor;
  groupSize: number;
  /** The optimizer step this micro-batch belongs to: how many micro-batches it has, and every row's outcome. */
  step: { microBatches: number; acc: readonly number[] };
}

/** What the advantage estimator needs from the reward model on one micro-batch. */
export interface RewardScoreInput {
  needs: 'token-rewards' | 'candidate-td';
  /** π_φ's output at the response positions (no graph needed): its logits [b, R, V] or its head input (fused head). */
  rm: Tensor | HeadInput;
  tokens: Tensor;
  mask: Tensor;
  beta: number;
  temperature: number;
  /** token-rewards: log π_ref of the sampled tokens [b, R]. */
  refLogprobs?: Tensor;
  /** candidate-td: π_old's candidate set [b, R, K] and log π_ref there. */
  candidateIndices?: Tensor;
  refTopkLogprobs?: Tensor;
}

export interface RewardScores {
  /** log π_φ − log π_ref at the sampled tokens [b, R] (0 at padding). */
  tokenLogRatio?: Tensor;
  /** β·(log π_φ − log π_ref) at the candidates [b, R, K]. */
  candidateTd?: Tensor;
}

export interface RewardModel {
  readonly name: string;
  /**
   * Whether an optimizer step whose rows have these outcomes (contiguous groups of groupSize) has anything to learn;
   * the RL loop skips the step when not. Absent: always.
   */
  learnsFrom?(acc: readonly number[], groupSize: number): boolean;
  /** The micro-batch's share of its optimizer step's loss (the step's loss is the sum of the shares), with its graph. */
  update(batch: RewardModelBatch, settings: RewardModelSettings, options?: AsyncOptions): Promise<Tensor>;
  score(input: RewardScoreInput, options?: AsyncOptions): Promise<RewardScores>;
}

/** The implicit reward β·log π_φ/π_ref, at the sampled tokens or at π_old's candidates (distrlTd). */
export async function implicitScore(input: RewardScoreInput, options: AsyncOptions = {}): Promise<RewardScores> {
  const { rm, tokens, mask, beta, temperature } = input;
  if (input.needs === 'token-rewards') {
    if (!input.refLogprobs) throw new Error('token rewards need refLogprobs (log π_ref of the sampled tokens)');
    const policy = (await outputLogprobs(rm, tokens.unsqueeze(-1), options)).squeeze(-1).mul(mask);
    return { tokenLogRatio: policy.sub(input.refLogprobs) };
  }
  if (!input.candidateIndices || !input.refTopkLogprobs) throw new Error('candidate TD needs candidateIndices and refTopkLogprobs');
  const policy = rm instanceof Tensor ? { rmLogits: rm } : headInputFields('rmHidden', rm);
  const { candidateTd } = await distrlTd(
    { ...policy, candidateIndices: input.candidateIndices, oldTopkLogprobs: input.refTopkLogprobs, mask, beta, temperature },
    options,
  );
  return { candidateTd };
}

const models = new Registry<RewardModel>('reward model');

export const registerRewardModel = (model: RewardModel): RewardModel => models.register(model);
export const getRewardModel = (name: string): RewardModel => models.get(name);
export const listRewardModels = (): string[] => models.names();
