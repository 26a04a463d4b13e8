// PRIME: implicit process rewards q_t = log π_φ(y_t) − log π_ref(y_t) (zero from t = L on) turned into advantages
// with RLOO (implemented-math.md §2c).
//   prime          verl recipe: scores β·q for t < L−1 (the last token gets 0), batch_norm, RLOO of the scores and
//                  of the outcome (at L−1), weighted reward_dpo_coef / reward_gt_coef, returns, masked_whiten.
//   prime_original the PRIME repo: scores q (no β) on every token ('token') or Σq at L−1 ('whole'), batch_norm,
//                  RLOO returns of scores and outcome summed without coefficients, masked_whiten.
// Registered estimators: 'prime' and 'prime-original' (token granularity), both reading the RM's token log ratios.
import { contiguousGroups, lengths, maskedWhiten, reverseCumsum, shapeCheck, type Matrix } from '../masked.js';
import { registerAdvantage, required, type AdvantageInput } from './registry.js';

export interface PrimeInput {
  /** Log ratios [B][T] (any values past each row's length are ignored). */
  q: Matrix;
  mask: Matrix;
  acc: number[];
  n: number;
  beta?: number;
  rewardDpoCoef?: number;
  rewardGtCoef?: number;
  /** prime_original only. */
  granularity?: 'token' | 'whole';
}

export interface PrimeAdvantages {
  tokenScores: Matrix;
  normalisedScores: Matrix;
  returns: Matrix;
  advantages: Matrix;
  /** verl recipe only: the combined RLOO reward per token. */
  finalReward?: Matrix;
}

/** x / (max_{b,t} |reverse_cumsum_t(x)| + 1e-6): one global scale for the batch. */
export function primeBatchNorm(x: Matrix): Matrix {
  const peak = reverseCumsum(x).reduce((m, row) => row.reduce((r, v) => Math.max(r, Math.abs(v)), m), 0); // no spread: B·T values
  return x.map((row) => row.map((v) => v / (peak + 1e-6)));
}

/** RLOO within contiguous groups of n: each masked entry becomes x·n/(n−1) − Σ_j mean_j/(n−1); others 0. */
export function maskedRloo(x: Matrix, mask: Matrix, n: number): Matrix {
  if (n < 2) throw new Error('RLOO needs at least 2 samples per prompt');
  const out = x.map((row) => row.map(() => 0));
  for (const members of contiguousGroups(x.length, n)) {
    const rowMeans = members.map((b) => {
      const count = mask[b].reduce((a, m) => a + m, 0);
      return count > 0 ? x[b].reduce((a, v, t) => a + v * mask[b][t], 0) / count : 0;
    });
    const baseline = rowMeans.reduce((a, v) => a + v, 0) / (n - 1);
    for (const b of members) x[b].forEach((v, t) => (out[b][t] = mask[b][t] ? (v * n) / (n - 1) - baseline : 0));
  }
  return out;
}

function checkInput({ q, mask, acc }: PrimeInput): number[] {
  shapeCheck('q', q, mask);
  if (acc.length !== mask.length) throw new Error(`acc has ${acc.length} rows, the mask ${mask.length}`);
  const L = lengths(mask);
  if (L.some((l) => l < 1)) throw new Error('every response needs at least one token (PRIME places the outcome at L−1)');
  return L;
}

/** The outcome as a sparse reward at each row's last token, and the mask that selects only that token. */
function outcomeAtLast(acc: number[], mask: Matrix, L: number[]): { reward: Matrix; lastMask: Matrix } {
  const reward = mask.map((row, b) => row.map((_, t) => (t === L[b] - 1 ? acc[b] : 0)));
  return { reward, lastMask: mask.map((row, b) => row.map((_, t) => (t === L[b] - 1 ? 1 : 0))) };
}

export function prime(input: PrimeInput): PrimeAdvantages {
  const L = checkInput(input);
  const { q, mask, acc, n, beta = 0.05, rewardDpoCoef = 5, rewardGtCoef = 5 } = input;
  const tokenScores = q.map((row, b) => row.map((v, t) => (t < L[b] - 1 ? beta * v : 0)));
  const normalisedScores = primeBatchNorm(tokenScores);
  const { reward, lastMask } = outcomeAtLast(acc, mask, L);
  const rm = maskedRloo(normalisedScores, mask, n);
  const gt = maskedRloo(reward, lastMask, n);
  const finalReward = rm.map((row, b) => row.map((v, t) => rewardDpoCoef * v + rewardGtCoef * gt[b][t]));
  const returns = reverseCumsum(finalReward.map((row, b) => row.map((v, t) => v * mask[b][t])));
  return { tokenScores, normalisedScores, finalReward, returns, advantages: maskedWhiten(returns, mask) };
}

export function primeOriginal(input: PrimeInput): PrimeAdvantages {
  const L = checkInput(input);
  const { q, mask, acc, n, granularity = 'token' } = input;
  const tokenScores =
    granularity === 'token'
      ? q.map((row, b) => row.map((v, t) => (t < L[b] ? v : 0)))
      : q.map((row, b) => row.map((_, t) => (t === L[b] - 1 ? row.slice(0, L[b]).reduce((a, v) => a + v, 0) : 0)));
  const normalisedScores = primeBatchNorm(tokenScores);
  const { reward, lastMask } = outcomeAtLast(acc, mask, L);
  const rmReturns = reverseCumsum(maskedRloo(normalisedScores, mask, n));
  const gtReturns = reverseCumsum(maskedRloo(reward, lastMask, n));
  const returns = rmReturns.map((row, b) => row.map((v, t) => (v + gtReturns[b][t]) * mask[b][t]));
  return { tokenScores, normalisedScores, returns, advantages: maskedWhiten(returns, mask) };
}

const fromInput = (input: AdvantageInput, name: string): PrimeInput => {
  const { acc, mask, n, beta, rewardDpoCoef, rewardGtCoef } = input;
  return { q: required(input, 'tokenLogRatio', name), mask, acc, n, beta, rewardDpoCoef, rewardGtCoef };
};

registerAdvantage({
  name: 'prime',
  needs: 'token-rewards',
  candidates: false,
  estimate: (input) => ({ advantages: prime(fromInput(input, 'prime')).advantages }),
});
registerAdvantage({
  name: 'prime-original',
  needs: 'token-rewards',
  candidates: false,
  estimate: (input) => ({ advantages: primeOriginal(fromInput(input, 'prime-original')).advantages }),
});
