// One-call scoring with a trained implicit reward model, for other tools: the steps of one solution (process
// verification, as `rm eval` scores ProcessBench) and a reranking of candidate answers (Best-of-N, as `rm eval`
// picks). Both read the implicit reward log π_φ − log π_ref at each response token.
import type { CausalLM } from '../model/causal-lm.js';
import type { AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { bonScores } from './bon.js';
import { predictFirstError, STEP_SCORE_MODES, stepRewards, stepScores, type StepScoreMode } from './processbench.js';
import { referenceStepSequence, scorePair, separatorEnds, stepSequence } from './reward-model.js';

/** The models that score: π_φ, its reference π_ref (the policy it was trained from) and their tokenizer. */
export interface ImplicitRewardModel {
  rewardModel: CausalLM;
  reference: CausalLM;
  tokenizer: Tokenizer;
}

/**
 * A solution as its steps (laid out token for token as ProcessBench's reference script does, referenceStepSequence),
 * or as a text and the character offset where each step ends (the last step runs to the end of the text).
 */
export type Solution = readonly string[] | { text: string; stepEnds: readonly number[] };

export interface ScoreStepsOptions extends AsyncOptions {
  /** Coefficient of the step rewards (default 0.001, the reference's; `rm eval --coef`). */
  coef?: number;
  /** β of the prefix values β·Σ lr / t (default 1: in log-ratio units). */
  beta?: number;
  /** The first-error prediction: the first step whose `mode` score is below `threshold` (defaults sum, 0.5). */
  mode?: StepScoreMode;
  threshold?: number;
}

export interface StepScoreReport {
  /** Each step's score in (0, 1) by every mode (`sum`: prefix-based, `sum_diff`: process-level, `mean`, `mean_diff`). */
  scores: Record<StepScoreMode, number[]>;
  /** β·Σ_{i≤t} lr_i / t at each step's last token (t counts response tokens): IPVRM's prefix value v̄. */
  prefixValues: number[];
  /** Index of the predicted first wrong step, −1 when none is below the threshold. */
  firstError: number;
  mode: StepScoreMode;
  threshold: number;
}

/**
 * Scores the steps of one solution to `problem` (the user's turn): the tokens and step boundaries `rm eval` uses
 * for ProcessBench, so the scores are its step scores.
 */
export async function scoreSteps(
  models: ImplicitRewardModel,
  problem: string,
  solution: Solution,
  options: ScoreStepsOptions = {},
): Promise<StepScoreReport> {
  const { coef = 0.001, beta = 1, mode = 'sum', threshold = 0.5, signal } = options;
  if (!STEP_SCORE_MODES.includes(mode)) throw new Error(`mode must be one of ${STEP_SCORE_MODES.join(', ')}, got '${mode}'`);
  if (!(coef > 0)) throw new Error('coef must be > 0');
  const sequence = Array.isArray(solution)
    ? referenceStepSequence(models.tokenizer, problem, solution as readonly string[])
    : textStepSequence(models.tokenizer, problem, solution as { text: string; stepEnds: readonly number[] });
  const [[policy], [ref]] = await scorePair(models.rewardModel, models.reference, [sequence.tokens], { signal });
  const rawReward = policy.map((v, j) => v - ref[j]);
  const firstBoundary = sequence.promptLength - 1;
  const item = { label: -1, rawReward, firstBoundary, stepEnds: sequence.stepEnds.map((e) => e - 1) };
  const rewards = stepRewards(item, coef);
  const scores = Object.fromEntries(STEP_SCORE_MODES.map((m) => [m, stepScores(rewards, m, coef)])) as Record<StepScoreMode, number[]>;
  // One running sum over the response: step k's value adds the positions up to its end.
  let [sum, j] = [0, firstBoundary];
  const prefixValues = item.stepEnds.map((end) => {
    for (; j <= end; j++) sum += rawReward[j];
    return (beta * sum) / (end - firstBoundary + 1);
  });
  return { scores, prefixValues, firstError: predictFirstError(scores[mode], threshold), mode, threshold };
}

/** A text and its steps' character ends as tokens; the last step runs to the end of the text (and owns the EOS), wherever its given end is. */
function textStepSequence(tokenizer: Tokenizer, problem: string, { text, stepEnds }: { text: string; stepEnds: readonly number[] }) {
  if (
    stepEnds.length === 0 ||
    stepEnds.some((end, k) => !Number.isInteger(end) || end < 1 || end > text.length || (k > 0 && end <= stepEnds[k - 1]))
  ) {
    throw new Error(`stepEnds must be increasing character offsets in [1, ${text.length}]`);
  }
  return stepSequence(tokenizer, problem, text, [...stepEnds.slice(0, -1), text.length]);
}

export interface RerankOptions extends AsyncOptions {
  /** The candidate's score (default mean: IPVRM's v̄(T) ∝ the mean log ratio; sum: Implicit PRM's and DPO-RM's z; min: the least cumulative step reward, steps split at blank lines). */
  score?: 'mean' | 'sum' | 'min';
  coef?: number;
}

/** `candidates` (responses to `problem`) best first by their implicit reward: `{ index, score }` each (ties keep their order). */
export async function rerank(
  models: ImplicitRewardModel,
  problem: string,
  candidates: readonly string[],
  options: RerankOptions = {},
): Promise<{ index: number; score: number }[]> {
  const { score = 'mean', coef = 0.001, signal } = options;
  if (!['mean', 'sum', 'min'].includes(score)) throw new Error(`score must be mean, sum or min, got '${score}'`);
  if (candidates.length === 0) return [];
  const sequences = candidates.map((text) => stepSequence(models.tokenizer, problem, text, blankLineSteps(text)));
  const [policy, ref] = await scorePair(
    models.rewardModel,
    models.reference,
    sequences.map((s) => s.tokens),
    { signal },
  );
  const scored = sequences.map((s, i) => {
    const from = s.promptLength - 1;
    const lr = policy[i].slice(from).map((v, j) => v - ref[i][from + j]);
    const value =
      score === 'min'
        ? bonScores({ tokenLogratio: lr, stepEnds: s.stepEnds.map((e) => e - 1 - from) }, coef).accMin
        : lr.reduce((a, v) => a + v, 0) / (score === 'mean' ? lr.length : 1);
    return { index: i, score: value };
  });
  return scored.sort((a, b) => b.score - a.score || a.index - b.index);
}

/** Steps at blank lines: the character offset after each separator, and the text's end. */
const blankLineSteps = (text: string) => [...separatorEnds(text, '\n\n'), Math.max(1, text.length)];
