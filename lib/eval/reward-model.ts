// Evaluation of a trained implicit reward model π_φ against its reference π_ref (implemented-math.md §4):
//   ProcessBench: each solution's steps are scored from the per-token log ratios, and the first step scored below a
//   threshold is the predicted first error (F1 at the oracle threshold, F1 at 0.5, and the threshold-free AUC);
//   Best-of-N: among a prompt's first N rollouts the highest-scored one is picked and verified.
// Each report carries the same metrics for the reference's own log-likelihood (raw reward log π_ref, ImplicitPRM's
// "w/o ref" mode): on the controlled task it beats every implicit RM (controlled-task-facts.md), so a result means
// something only beside it.
import type { ProcessBenchRecord } from '../data/schemas.js';
import { evaluateProcessBench, STEP_SCORE_MODES, type StepScoreMode } from './processbench.js';
import { avgAtK, bonScores, selectBest } from './bon.js';
import type { CausalLM } from '../model/causal-lm.js';
import { groupByPrompt, type Rollout } from '../rollout/rollouts.js';
import { TASK_SOURCE } from '../task/datasets.js';
import { layoutSteps, TRACE_FORMATS, type TraceFormat } from '../task/render.js';
import type { AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';

/** A solution as tokens: prompt then response (EOS included); `stepEnds` are token indices of each step's last token. */
export interface StepSequence {
  tokens: number[];
  promptLength: number;
  stepEnds: number[];
  label: number;
}

/**
 * Tokenises ProcessBench rows and finds each step's last token. Rows made by `data make-task` are laid out in their
 * trace format, as the policy saw its prompts (stepSequence: a step owns the separator after it, the last step the
 * EOS); other rows exactly as ProcessBench's reference script does (referenceStepSequence).
 */
export function stepSequences(tokenizer: Tokenizer, records: readonly (ProcessBenchRecord & { trace_format?: unknown })[]): StepSequence[] {
  return records.map((record) => {
    const format = TRACE_FORMATS.includes(record.trace_format as TraceFormat) ? (record.trace_format as TraceFormat) : undefined;
    try {
      if (!format) return { ...referenceStepSequence(tokenizer, record.problem, record.steps), label: record.label };
      const { response, stepEnds: charEnds } = layoutSteps(record.steps, format);
      return { ...stepSequence(tokenizer, record.problem, response, charEnds), label: record.label };
    } catch (err) {
      throw new Error(`${record.id}: ${(err as Error).message}`);
    }
  });
}

/**
 * One solution as tokens: the problem as the user's turn (chat template, generation prompt), then `response` and
 * EOS; step k ends at character `charEnds[k]` of the response (the last step at its end, owning the EOS). A step
 * ends where the tokens of the response up to its end end, so this needs a tokenizer whose prefixes tokenise as
 * prefixes (true of any tokenizer at newline boundaries).
 */
export function stepSequence(tokenizer: Tokenizer, problem: string, response: string, charEnds: readonly number[]): Omit<StepSequence, 'label'> {
  const eos = tokenizer.eosTokenId;
  if (eos === null) throw new Error('the tokenizer has no EOS token: the last step ends with it');
  if (charEnds.length === 0) throw new Error('a solution needs at least one step');
  const prompt = tokenizer.encodeChat([{ role: 'user', content: problem }], { addGenerationPrompt: true });
  const responseTokens = tokenizer.encode(response, { addSpecialTokens: false });
  const tokens = [...prompt, ...responseTokens, eos];
  const stepEnds = [...prefixTokenEnds(tokenizer, response, charEnds.slice(0, -1)).map((end) => prompt.length + end), tokens.length - 1];
  return checkedSteps({ tokens, promptLength: prompt.length, stepEnds });
}

/**
 * ProcessBench's reference layout, token for token (implemented-math.md §4a, process_eval.py): the steps as
 * "Step i: " + step joined by blank lines, the assistant's turn after the problem under the chat template; the tokens
 * are the whole conversation's, stripped. Step k ends where the reference puts it: at the last token of its prefix
 * conversation template(steps[:k]).strip() + "\n\n". Inside the whole text that is one token into the next step (the
 * prefix's end-of-turn token stands where the next step begins), as the reference scores it; the last step ends with
 * the template's end-of-turn token, and the response starts at the token the empty turn's end-of-turn stands on.
 */
export function referenceStepSequence(tokenizer: Tokenizer, problem: string, steps: readonly string[]): Omit<StepSequence, 'label'> {
  if (steps.length === 0) throw new Error('a solution needs at least one step');
  const conversation = (k: number) =>
    tokenizer
      .applyChatTemplate([
        { role: 'user', content: problem },
        {
          role: 'assistant',
          content: steps
            .slice(0, k)
            .map((step, i) => `Step ${i + 1}: ${step}`)
            .join('\n\n'),
        },
      ])
      .trim();
  const tokens = tokenizer.encode(conversation(steps.length));
  // The reference's index max(0, len(conv_k) − 2) is a shifted log-prob position: the token after it, here.
  const end = (k: number) =>
    Math.min(Math.max(0, tokenizer.encode(conversation(k) + (k > 0 && k < steps.length ? '\n\n' : '')).length - 2) + 1, tokens.length - 1);
  return checkedSteps({ tokens, promptLength: end(0), stepEnds: steps.map((_, k) => end(k + 1)) });
}

function checkedSteps(sequence: Omit<StepSequence, 'label'>): Omit<StepSequence, 'label'> {
  const { promptLength, stepEnds } = sequence;
  for (let k = 0; k < stepEnds.length; k++) {
    if (stepEnds[k] <= (k === 0 ? promptLength - 1 : stepEnds[k - 1])) throw new Error(`step ${k} has no tokens of its own`);
  }
  return sequence;
}

/** The index, within `text`'s tokens, of the last token of each prefix text.slice(0, end). */
function prefixTokenEnds(tokenizer: Tokenizer, text: string, charEnds: readonly number[]): number[] {
  return charEnds.map((end) => tokenizer.encode(text.slice(0, end), { addSpecialTokens: false }).length - 1);
}

export interface ModeSummary {
  /** F1 at the best threshold of IPVRM's grid (linspace(−1, 1)), and that threshold. */
  f1: number;
  threshold: number | undefined;
  /** F1 at the best threshold of ImplicitPRM's grid (linspace(0, 1)), and that threshold (none when no F1 beats 0). */
  implicitPrmF1: number;
  implicitPrmThreshold: number | undefined;
  /** F1 at a threshold of 0.5. */
  f1AtHalf: number;
  auc: number;
}

export type ProcessBenchSummary = Record<StepScoreMode, ModeSummary>;

export interface RmEvalOptions extends AsyncOptions {
  /** Score coefficient of the step rewards (reference 0.001; the RM's β is the paper's reading). */
  coef?: number;
  numThresholds?: number;
  batchSize?: number;
  /** Called after each scored batch: sequences done of the total over both models' passes. */
  onProgress?: (done: number, total: number) => void;
}

/** log π_φ and log π_ref of every sequence, reporting progress over both passes. */
export async function scorePair(
  rewardModel: CausalLM,
  reference: CausalLM,
  tokens: readonly number[][],
  options: RmEvalOptions,
): Promise<[number[][], number[][]]> {
  const { onProgress, ...rest } = options;
  const n = tokens.length;
  const policy = await rewardModel.sequenceLogprobs(tokens, { ...rest, onBatch: (done) => onProgress?.(done, 2 * n) });
  const ref = await reference.sequenceLogprobs(tokens, { ...rest, onBatch: (done) => onProgress?.(n + done, 2 * n) });
  return [policy, ref];
}

function summarise(items: Parameters<typeof evaluateProcessBench>[0], options: RmEvalOptions): ProcessBenchSummary {
  const { modes } = evaluateProcessBench(items, { coef: options.coef, numThresholds: options.numThresholds });
  return Object.fromEntries(
    STEP_SCORE_MODES.map((mode) => {
      const m = modes[mode];
      const implicit = { implicitPrmF1: m.implicitPrmBest.f1, implicitPrmThreshold: m.implicitPrmBest.threshold };
      return [mode, { f1: m.best.f1, threshold: m.best.threshold, ...implicit, f1AtHalf: m.atHalf.f1, auc: m.auc }];
    }),
  ) as ProcessBenchSummary;
}

export interface StepVerificationReport {
  items: number;
  rewardModel: ProcessBenchSummary;
  referenceLikelihood: ProcessBenchSummary;
}

/** ProcessBench-style step verification by the implicit reward log π_φ − log π_ref, and by log π_ref alone. */
export async function evaluateStepVerification(
  rewardModel: CausalLM,
  reference: CausalLM,
  sequences: readonly StepSequence[],
  options: RmEvalOptions = {},
): Promise<StepVerificationReport> {
  if (sequences.length === 0) throw new Error('step verification needs at least one ProcessBench item');
  const tokens = sequences.map((s) => s.tokens);
  const [policy, ref] = await scorePair(rewardModel, reference, tokens, options);
  const items = (raw: (i: number) => number[]) =>
    sequences.map((s, i) => ({ label: s.label, rawReward: raw(i), firstBoundary: s.promptLength - 1, stepEnds: s.stepEnds.map((e) => e - 1) }));
  return {
    items: sequences.length,
    rewardModel: summarise(
      items((i) => policy[i].map((v, j) => v - ref[i][j])),
      options,
    ),
    referenceLikelihood: summarise(
      items((i) => ref[i]),
      options,
    ),
  };
}

/** The two protocols of the paper's ProcessBench tables: prefix-based (`sum`, eq. 30) and process-level (`sum_diff`, eq. 31). */
export const PROCESSBENCH_PROTOCOLS = { 'prefix-based': 'sum', 'process-level': 'sum_diff' } as const satisfies Record<string, StepScoreMode>;

export interface ProcessBenchAverage {
  /** The subsets averaged (ProcessBench's four: GSM8K, MATH, OlympiadBench, Omni-MATH; one file each). */
  subsets: number;
  /** Per score, per step-score mode: the mean over subsets of F1 (IPVRM's and ImplicitPRM's grids), F1 at 0.5 and AUC. */
  rewardModel: Record<StepScoreMode, { f1: number; implicitPrmF1: number; f1AtHalf: number; auc: number }>;
  referenceLikelihood: Record<StepScoreMode, { f1: number; implicitPrmF1: number; f1AtHalf: number; auc: number }>;
}

/** The mean over subsets of each metric (the paper's Table 2 average column). */
export function averageProcessBench(reports: readonly StepVerificationReport[]): ProcessBenchAverage {
  if (reports.length === 0) throw new Error('averaging ProcessBench needs at least one subset');
  const mean = (pick: (r: StepVerificationReport) => number) => reports.reduce((a, r) => a + pick(r), 0) / reports.length;
  const of = (score: 'rewardModel' | 'referenceLikelihood') =>
    Object.fromEntries(
      STEP_SCORE_MODES.map((mode) => [
        mode,
        {
          f1: mean((r) => r[score][mode].f1),
          implicitPrmF1: mean((r) => r[score][mode].implicitPrmF1),
          f1AtHalf: mean((r) => r[score][mode].f1AtHalf),
          auc: mean((r) => r[score][mode].auc),
        },
      ]),
    ) as ProcessBenchAverage['rewardModel'];
  return { subsets: reports.length, rewardModel: of('rewardModel'), referenceLikelihood: of('referenceLikelihood') };
}

/**
 * Token indices, within a rollout's response, of each step's last token: steps split at `separator` ('\n' for the
 * controlled task's format, else '\n\n'), each owning the separator after it; the last step ends at the last token.
 */
export function responseStepEnds(tokenizer: Tokenizer, rollout: Rollout): number[] {
  const charEnds = separatorEnds(rollout.response, rollout.data_source === TASK_SOURCE ? '\n' : '\n\n');
  const last = rollout.response_ids.length - 1;
  // A step with no token of its own (or one reaching the last token) merges into the next.
  const ends: number[] = [];
  for (const end of prefixTokenEnds(tokenizer, rollout.response, charEnds)) if (end > (ends.at(-1) ?? -1) && end < last) ends.push(end);
  return [...ends, last];
}

/** Character offsets just after each `separator` in `text` (a step owns the separator after it), the text's end excluded. */
export function separatorEnds(text: string, separator: string): number[] {
  const ends: number[] = [];
  for (let at = text.indexOf(separator); at >= 0; at = text.indexOf(separator, at + separator.length)) {
    if (at + separator.length < text.length) ends.push(at + separator.length);
  }
  return ends;
}

export interface BonReport {
  prompts: number;
  /** Accuracy of the pick among each prompt's first N rollouts, for each N. */
  byN: {
    n: number;
    rewardModel: number;
    rewardModelSum: number;
    rewardModelMin: number;
    referenceLikelihood: number;
    random: number;
    oracle: number;
  }[];
}

/**
 * Best-of-N on verified rollouts (`prefix-rl rollout` on held-out prompts): per prompt, the first N rollouts are
 * scored and the best is picked (ties: the first). Scores: the RM's final normalised prefix value v̄(T) ∝ mean log
 * ratio (IPVRM's natural score), its sum (Implicit PRM's and DPO-RM's z), its step-wise min (ImplicitPRM's default
 * reward integration: the least cumulative reward at a step end, steps as responseStepEnds splits them), and the
 * reference's mean log-prob. `random` is avg@N (the expected accuracy of an unscored pick) and `oracle` is pass@N.
 */
export async function evaluateBestOfN(
  rewardModel: CausalLM,
  reference: CausalLM,
  tokenizer: Tokenizer,
  rollouts: readonly Rollout[],
  ns: readonly number[],
  options: RmEvalOptions = {},
): Promise<BonReport> {
  const groups = groupByPrompt(rollouts);
  const largest = Math.max(...ns);
  if (groups.length === 0) throw new Error('Best-of-N needs rollouts');
  if (ns.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('each N of Best-of-N must be a positive integer');
  const short = groups.find((g) => g.length < largest);
  if (short) throw new Error(`Best-of-${largest} needs ${largest} rollouts per prompt; prompt ${short[0].prompt_index} has ${short.length}`);
  const used = groups.map((g) => g.slice(0, largest));
  const flat = used.flat();
  const tokens = flat.map((r) => [...r.prompt_ids, ...r.response_ids]);
  const [policy, ref] = await scorePair(rewardModel, reference, tokens, options);
  const scores = flat.map((r, i) => {
    const from = r.prompt_ids.length - 1;
    const lr = policy[i].slice(from).map((v, j) => v - ref[i][from + j]);
    const sum = lr.reduce((a, v) => a + v, 0);
    const likelihood = ref[i].slice(from).reduce((a, v) => a + v, 0) / lr.length;
    const min = bonScores({ tokenLogratio: lr, stepEnds: responseStepEnds(tokenizer, r) }, options.coef ?? 0.001).accMin;
    return { mean: sum / lr.length, sum, min, likelihood };
  });
  const pick = (n: number, key: 'mean' | 'sum' | 'min' | 'likelihood') =>
    used.reduce((a, group, g) => a + group[selectBest(group.slice(0, n).map((_, i) => scores[g * largest + i][key]))].score, 0) / used.length;
  return {
    prompts: used.length,
    byN: ns.map((n) => ({
      n,
      rewardModel: pick(n, 'mean'),
      rewardModelSum: pick(n, 'sum'),
      rewardModelMin: pick(n, 'min'),
      referenceLikelihood: pick(n, 'likelihood'),
      random: avgAtK(used.map((g) => g.slice(0, n).map((r) => r.score))),
      oracle: used.filter((g) => g.slice(0, n).some((r) => r.score === 1)).length / used.length,
    })),
  };
}
