// ProcessBench-style step verification with an implicit reward (IPVRM process_bench/process_eval.py, ImplicitPRM
// eval/processbench.py; implemented-math.md §4a). Step boundaries are given as indices into the per-position log
// ratios, so any tokenizer can produce them.
export type StepScoreMode = 'sum' | 'sum_diff' | 'mean' | 'mean_diff';
export const STEP_SCORE_MODES: readonly StepScoreMode[] = ['sum', 'sum_diff', 'mean', 'mean_diff'];

export interface ProcessBenchItem {
  /** −1 when every step is right, else the index of the first wrong step. */
  label: number;
  /** Per-position log ratio log π_φ − log π_ref; entry j scores token j+1. */
  rawReward: number[];
  /** Index of the first response position in rawReward. */
  firstBoundary: number;
  /** Index in rawReward of each step's last position. */
  stepEnds: number[];
}

export interface StepRewards {
  /** Prefix reward at each step end: cumsum(coef·raw)[end]. */
  reward: number[];
  /** reward / (end − firstBoundary), or 0 when that is ≤ 0. */
  avgReward: number[];
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function stepRewards(item: ProcessBenchItem, coef: number): StepRewards {
  const { rawReward, firstBoundary, stepEnds } = item;
  if (rawReward.some((v) => !Number.isFinite(v))) throw new Error('rawReward contains NaN or Inf');
  const csum: number[] = [];
  let acc = 0;
  rawReward.forEach((v, j) => csum.push((acc += j >= firstBoundary ? coef * v : 0)));
  const reward = stepEnds.map((end) => csum[Math.max(0, Math.min(end, csum.length - 1))]);
  const avgReward = stepEnds.map((end, k) => (end - firstBoundary > 0 ? reward[k] / (end - firstBoundary) : 0));
  return { reward, avgReward };
}

/** Step scores in (0, 1) for one mode (paper: `sum` is prefix-based, eq. 30; `sum_diff` process-level, eq. 31). */
export function stepScores(rewards: StepRewards, mode: StepScoreMode, coef: number): number[] {
  return stepLogits(rewards, mode, coef).map(sigmoid);
}

/** The step scores before their sigmoid: what ranks steps without saturating (see stepAuc). */
export function stepLogits({ reward, avgReward }: StepRewards, mode: StepScoreMode, coef: number): number[] {
  const previous = (k: number) => (k > 0 ? reward[k - 1] : 0);
  switch (mode) {
    case 'sum':
      return reward;
    case 'sum_diff':
      return reward.map((r, k) => r - previous(k));
    case 'mean':
      return avgReward.map((a) => a / Math.sqrt(coef));
    case 'mean_diff': {
      // Step lengths recovered from reward / avg_reward, as the reference does.
      let lastLength = 0;
      return reward.map((r, k) => {
        const length = Math.abs(avgReward[k]) <= 1e-9 ? lastLength + 1 : roundHalfEven(r / avgReward[k]);
        let stepLength = length - lastLength;
        if (stepLength <= 0) stepLength = 1;
        lastLength = length;
        return (r - previous(k)) / stepLength / Math.sqrt(coef);
      });
    }
  }
}

/** The first step scored below `threshold` (strict), or −1. */
export function predictFirstError(scores: number[], threshold: number): number {
  return scores.findIndex((s) => s < threshold);
}

export interface F1Result {
  accCorrect: number;
  accError: number;
  f1: number;
}

/** ProcessBench F1: the harmonic mean of the match rates on all-correct and on erroneous samples. */
export function processBenchF1(labels: number[], predictions: number[]): F1Result {
  const rate = (select: (label: number) => boolean) => {
    const idx = labels.map((l, i) => (select(l) ? i : -1)).filter((i) => i >= 0);
    return idx.length ? idx.filter((i) => predictions[i] === labels[i]).length / idx.length : NaN;
  };
  const accCorrect = rate((l) => l === -1);
  const accError = rate((l) => l !== -1);
  const f1 = accCorrect + accError > 0 ? (2 * accCorrect * accError) / (accCorrect + accError) : 0;
  return { accCorrect, accError, f1 };
}

/**
 * Threshold-free step verification: the probability that a right step (before the first error) scores above a first
 * wrong step, ties counting half (Mann-Whitney AUC). Steps after the first error are left out: their labels are not
 * defined. NaN when either kind is absent.
 */
export function stepAuc(labels: number[], scores: number[][]): number {
  // NaN equals nothing, not even itself: the rank-sum's tie loop below would never end on one.
  if (scores.some((row) => row.some(Number.isNaN)))
    throw new Error('step scores hold NaN (the models gave NaN log-probs, or the coefficient is not finite)');
  const right: number[] = [];
  const wrong: number[] = [];
  labels.forEach((label, i) => {
    const last = label === -1 ? scores[i].length : Math.min(label + 1, scores[i].length);
    for (let k = 0; k < last; k++) (k === label ? wrong : right).push(scores[i][k]);
  });
  if (right.length === 0 || wrong.length === 0) return NaN;
  // Rank-sum over the pooled scores (average ranks for ties): O(n log n).
  const pooled = [...right.map((v) => ({ v, right: true })), ...wrong.map((v) => ({ v, right: false }))].sort((a, b) => a.v - b.v);
  let rankSumRight = 0;
  for (let i = 0; i < pooled.length;) {
    let j = i;
    while (j < pooled.length && pooled[j].v === pooled[i].v) j++;
    const averageRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (pooled[k].right) rankSumRight += averageRank;
    i = j;
  }
  return (rankSumRight - (right.length * (right.length + 1)) / 2) / (right.length * wrong.length);
}

/** numpy.linspace(start, stop, num): k·step + start, with the last point exactly `stop`. */
export function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, k) => (k === num - 1 ? stop : k * step + start));
}

export interface ThresholdSearch {
  threshold: number | undefined;
  f1: number;
  predictions: number[] | undefined;
}

/**
 * Oracle threshold over `grid`: the first threshold with strictly greater F1 than the best so far. IPVRM starts
 * from "none" (grid[0] always taken); ImplicitPRM from F1 0 (no threshold when every F1 is 0). Samples of one kind
 * only (all correct, or all erroneous) have no F1 at any threshold: no threshold, F1 0, as the reference skips each.
 */
export function searchThreshold(labels: number[], scores: number[][], grid: number[], start: 'none' | 'zero'): ThresholdSearch {
  let best: ThresholdSearch = { threshold: undefined, f1: start === 'zero' ? 0 : -Infinity, predictions: undefined };
  if (!labels.includes(-1) || labels.every((label) => label === -1)) return { ...best, f1: 0 };
  for (const threshold of grid) {
    const predictions = scores.map((s) => predictFirstError(s, threshold));
    const { f1 } = processBenchF1(labels, predictions);
    if (f1 > best.f1) best = { threshold, f1, predictions };
  }
  return best;
}

export interface ModeReport {
  scores: number[][];
  /** Threshold-free: P(a right step scores above a first wrong step), ranked by the step logits (no saturation). */
  auc: number;
  best: ThresholdSearch;
  implicitPrmBest: ThresholdSearch;
  atHalf: F1Result & { predictions: number[] };
}

export interface ProcessBenchOptions {
  /** Reward coefficient: 0.001 in the reference scripts (the paper writes β). */
  coef?: number;
  numThresholds?: number;
}

/** Scores every item in the four modes and reports oracle-threshold F1 (both grids) and F1 at 0.5. */
export function evaluateProcessBench(items: ProcessBenchItem[], options: ProcessBenchOptions = {}) {
  const { coef = 0.001, numThresholds = 1000 } = options;
  if (items.length === 0) throw new Error('ProcessBench evaluation needs at least one item');
  if (!Number.isInteger(numThresholds) || numThresholds < 2) throw new Error(`numThresholds must be an integer ≥ 2, got ${numThresholds}`);
  if (!(coef > 0 && Number.isFinite(coef))) throw new Error(`coef must be a positive finite number, got ${coef}`);
  const labels = items.map((item) => item.label);
  const rewards = items.map((item) => stepRewards(item, coef));
  const modes = {} as Record<StepScoreMode, ModeReport>;
  for (const mode of STEP_SCORE_MODES) {
    const scores = rewards.map((r) => stepScores(r, mode, coef));
    const predictions = scores.map((s) => predictFirstError(s, 0.5));
    modes[mode] = {
      scores,
      auc: stepAuc(
        labels,
        rewards.map((r) => stepLogits(r, mode, coef)),
      ),
      best: searchThreshold(labels, scores, linspace(-1, 1, numThresholds), 'none'),
      implicitPrmBest: searchThreshold(labels, scores, linspace(0, 1, numThresholds), 'zero'),
      atHalf: { ...processBenchF1(labels, predictions), predictions },
    };
  }
  return { rewards, modes };
}
