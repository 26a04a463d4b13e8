// Best-of-N reranking with implicit rewards (ImplicitPRM eval/prm_eval_utils.py; implemented-math.md §4b) and
// policy metrics (avg@k, pass@k).
export interface BonCandidate {
  /** log π_φ − log π_ref at each response token. */
  tokenLogratio: number[];
  /** Index of each step's last token. */
  stepEnds: number[];
}

export interface BonScores {
  /** cumsum(coef·lr) at each step end. */
  accumulative: number[];
  /** Per-step differences of `accumulative`. */
  single: number[];
  accMin: number;
  accSum: number;
  singleMin: number;
  singleSum: number;
  /** IPVRM's final normalised prefix value β·Σ lr / T, and its sigmoid. */
  ipvrmFinalVbar: number;
  ipvrmFinalSigmoid: number;
  seqLogratioSum: number;
}

export function bonScores({ tokenLogratio, stepEnds }: BonCandidate, coef = 0.001, beta = 10): BonScores {
  if (tokenLogratio.length === 0) throw new Error('a BoN candidate needs at least one response token');
  if (tokenLogratio.some((v) => !Number.isFinite(v))) throw new Error('tokenLogratio contains NaN or Inf');
  const csum: number[] = [];
  let acc = 0;
  for (const v of tokenLogratio) csum.push((acc += coef * v));
  const accumulative = stepEnds.map((end) => {
    if (end < 0 || end >= csum.length) throw new Error(`step end ${end} is outside the response (length ${csum.length})`);
    return csum[end];
  });
  const single = accumulative.map((a, k) => a - (k > 0 ? accumulative[k - 1] : 0));
  const sum = (xs: number[]) => xs.reduce((a, v) => a + v, 0);
  const seqLogratioSum = sum(tokenLogratio);
  const ipvrmFinalVbar = (beta * seqLogratioSum) / tokenLogratio.length;
  return {
    accumulative,
    single,
    accMin: Math.min(...accumulative),
    accSum: sum(accumulative),
    singleMin: Math.min(...single),
    singleSum: sum(single),
    ipvrmFinalVbar,
    ipvrmFinalSigmoid: 1 / (1 + Math.exp(-ipvrmFinalVbar)),
    seqLogratioSum,
  };
}

/** Index of the highest score; the first wins ties. */
export function selectBest(scores: number[]): number {
  if (scores.length === 0) throw new Error('selectBest needs at least one score');
  return scores.reduce((best, s, i) => (s > scores[best] ? i : best), 0);
}

/** Mean accuracy over k samples per problem, averaged over problems: correct[p][i] ∈ {0, 1}. */
export function avgAtK(correct: number[][]): number {
  if (correct.length === 0) throw new Error('avg@k needs at least one problem');
  return correct.reduce((a, row) => a + row.reduce((s, c) => s + c, 0) / row.length, 0) / correct.length;
}

/** Unbiased pass@k from n samples with c correct: 1 − C(n−c, k)/C(n, k). */
export function passAtK(n: number, c: number, k: number): number {
  if (k > n) throw new Error(`pass@${k} needs at least ${k} samples, got ${n}`);
  if (n - c < k) return 1;
  let ratio = 1;
  for (let i = n - c + 1; i <= n; i++) ratio *= 1 - k / i;
  return 1 - ratio;
}
