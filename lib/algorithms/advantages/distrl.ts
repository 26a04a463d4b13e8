// DistRL advantages (implemented-math.md §3c; paper App. C eq. 26-29 and eq. 13).
// Input: the candidate TD β·(log π_φ − log π_old) [B][T][K] from the native `distrl_td` (slot 0 = sampled token).
//   reference (the code): σ_V = population std of the prefix values V_t = Σ_{i≤t} TD_i over every valid position of
//     the batch (≥ 1e-6; 1 with ≤ 1 valid position); GAE over (TD − batch mean)/σ_V, then masked_whiten;
//     A = reward_gt_coef·GRPO + reward_gae_coef·whitened GAE; candidate advantages Â = TD/σ_V (not centred).
//   paper: TD normalised per prompt group, (TD − μ_g)/(σ_g + 1e-6); GAE without whitening; A = GRPO + coef·GAE;
//     candidate advantages Â = TD/(σ_V + 1e-6) (eq. 25), σ_V the population std of the same prefix values.
// Registered estimators: 'distrl' (A and the candidate advantages Â) and 'grpo-prm' (GRPO + coef × GAE over the TD of
// the sampled tokens, eq. 13: A alone, for Tok-PPO without Dist-PPO).
import { contiguousGroups, maskedGae, maskedMoments, maskedWhiten, type Matrix } from '../masked.js';
import { grpo } from './grpo.js';
import { registerAdvantage, required, type AdvantageInput } from './registry.js';

export interface DistrlAdvantageInput {
  candidateTd: number[][][];
  mask: Matrix;
  /** Outcome rewards per row (0/1 accuracy or any float). */
  acc: number[];
  /** Rollouts per prompt (contiguous groups). */
  n: number;
  gamma?: number;
  lam?: number;
  rewardGtCoef?: number;
  /** Weight of the GAE term: 0.05 in the reference scripts; the paper's eq. 13 has none (1). */
  rewardGaeCoef?: number;
  conventions?: 'reference' | 'paper';
}

export interface DistrlAdvantages {
  /** Sampled-token advantages [B][T], masked. */
  advantages: Matrix;
  /** Candidate advantages Â [B][T][K] for Dist-PPO. */
  scaledCandidateTd: number[][][];
  grpo: Matrix;
  gae: Matrix;
  /** Reference intermediates. */
  prefixValues?: Matrix;
  prefixValueStd?: number;
  sampledTdMean?: number;
  tdForGae?: Matrix;
  gaeRaw?: Matrix;
  /** Paper intermediate: the group-normalised TD. */
  tdHat?: Matrix;
}

function checkInput({ candidateTd, mask, acc }: DistrlAdvantageInput): void {
  if (candidateTd.length !== mask.length || candidateTd.some((row, b) => row.length !== mask[b].length)) {
    throw new Error('candidateTd must be [B][T][K] with [B][T] the mask shape');
  }
  if (acc.length !== mask.length) throw new Error(`acc has ${acc.length} rows, the mask ${mask.length}`);
  for (const row of candidateTd)
    for (const cell of row) for (const v of cell) if (!Number.isFinite(v)) throw new Error('candidateTd contains NaN or Inf');
}

/** The reference's σ_V: population std of the masked prefix values, clamped at 1e-6; 1 with ≤ 1 valid element. */
function prefixValueStd(prefixValues: Matrix, mask: Matrix): number {
  const { std, count } = maskedMoments(prefixValues, mask);
  return count <= 1 ? 1 : Math.max(std, 1e-6);
}

export function distrlAdvantages(input: DistrlAdvantageInput): DistrlAdvantages {
  checkInput(input);
  const { candidateTd, mask, acc, n, gamma = 1, lam = 1, rewardGtCoef = 1, conventions = 'reference' } = input;
  const td0 = candidateTd.map((row) => row.map((cell) => cell[0]));
  const outcome = grpo({ rewards: acc, mask, n });

  const prefixValues = td0.map((row, b) => {
    let acc = 0;
    return row.map((v, t) => (acc += v) * mask[b][t]);
  });
  if (conventions === 'paper') {
    const coef = input.rewardGaeCoef ?? 1;
    const { std } = maskedMoments(prefixValues, mask);
    const tdHat = td0.map((row) => row.map(() => 0));
    for (const members of contiguousGroups(mask.length, n)) {
      const { mean, std } = maskedMoments(
        members.map((b) => td0[b]),
        members.map((b) => mask[b]),
      );
      for (const b of members) td0[b].forEach((v, t) => (tdHat[b][t] = mask[b][t] ? (v - mean) / (std + 1e-6) : 0));
    }
    const gae = maskedGae(tdHat, mask, gamma, lam);
    return {
      advantages: outcome.map((row, b) => row.map((g, t) => rewardGtCoef * g + coef * gae[b][t])),
      scaledCandidateTd: candidateTd.map((row) => row.map((cell) => cell.map((v) => v / (std + 1e-6)))),
      prefixValues,
      prefixValueStd: std,
      grpo: outcome,
      gae,
      tdHat,
    };
  }

  const coef = input.rewardGaeCoef ?? 0.05;
  const std = prefixValueStd(prefixValues, mask);
  const { mean } = maskedMoments(td0, mask);
  const tdForGae = td0.map((row) => row.map((v) => (v - mean) / std));
  const gaeRaw = maskedGae(tdForGae, mask, gamma, lam);
  const gae = maskedWhiten(gaeRaw, mask);
  return {
    advantages: outcome.map((row, b) => row.map((g, t) => (rewardGtCoef * g + coef * gae[b][t]) * mask[b][t])),
    scaledCandidateTd: candidateTd.map((row) => row.map((cell) => cell.map((v) => v / std))),
    grpo: outcome,
    gae,
    prefixValues,
    prefixValueStd: std,
    sampledTdMean: mean,
    tdForGae,
    gaeRaw,
  };
}

const fromInput = (input: AdvantageInput, name: string): DistrlAdvantages => {
  const { acc, mask, n, gamma, lam, rewardGtCoef, rewardGaeCoef, conventions } = input;
  return distrlAdvantages({ candidateTd: required(input, 'candidateTd', name), mask, acc, n, gamma, lam, rewardGtCoef, rewardGaeCoef, conventions });
};

registerAdvantage({
  name: 'distrl',
  needs: 'candidate-td',
  candidates: true,
  estimate: (input) => {
    const out = fromInput(input, 'distrl');
    return { advantages: out.advantages, candidateAdvantages: out.scaledCandidateTd };
  },
});

registerAdvantage({
  name: 'grpo-prm',
  needs: 'candidate-td',
  candidates: false,
  estimate: (input) => ({ advantages: fromInput(input, 'grpo-prm').advantages }),
});
