// Outcome advantages of GRPO, broadcast over the response mask:
//   grpo       (IPVRM)  (r − mean_g) / max(std_pop_g, 1e-6), contiguous groups of n
//   grpoVerl   (verl)   (r − mean_g) / (std_bessel_g + 1e-6), groups by `index`; a singleton group has mean 0, std 1
//   drGrpo     (Dr.GRPO) r − mean_g, groups by `index`
// Registered estimators: 'grpo' (IPVRM's) and 'drgrpo' (Dr.GRPO), both over contiguous groups of n.
import { broadcastRows, contiguousGroups, indexGroups, type Matrix } from '../masked.js';
import { registerAdvantage, type AdvantageInput } from './registry.js';

export interface GrpoInput {
  rewards: number[];
  mask: Matrix;
  /** Contiguous group size (grpo). */
  n?: number;
  /** Group id per row (grpo_verl, drgrpo); defaults to contiguous groups of n. */
  index?: (number | string)[];
}

function checkRewards({ rewards, mask }: GrpoInput): void {
  if (rewards.length !== mask.length) throw new Error(`rewards has ${rewards.length} rows, the mask ${mask.length}`);
  if (rewards.some((r) => !Number.isFinite(r))) throw new Error('rewards contain NaN or Inf');
}

function groupsOf(input: GrpoInput): number[][] {
  if (input.index) {
    if (input.index.length !== input.rewards.length) throw new Error('index must have one entry per row');
    return indexGroups(input.index);
  }
  return contiguousGroups(input.rewards.length, input.n ?? 0);
}

function normalise(input: GrpoInput, groups: number[][], scale: (members: number[], mean: number) => number, singleton?: number): Matrix {
  checkRewards(input);
  const out = new Array<number>(input.rewards.length);
  for (const members of groups) {
    const values = members.map((b) => input.rewards[b]);
    if (members.length === 1 && singleton !== undefined) {
      out[members[0]] = (values[0] - 0) / singleton;
      continue;
    }
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    const s = scale(values, mean);
    members.forEach((b, i) => (out[b] = (values[i] - mean) / s));
  }
  return broadcastRows(out, input.mask);
}

const popStd = (values: number[], mean: number) => Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
const besselStd = (values: number[], mean: number) => Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));

export function grpo(input: GrpoInput): Matrix {
  if (input.n === undefined) throw new Error('grpo needs the contiguous group size n');
  return normalise(input, contiguousGroups(input.rewards.length, input.n), (v, m) => Math.max(popStd(v, m), 1e-6));
}

export function grpoVerl(input: GrpoInput): Matrix {
  return normalise(input, groupsOf(input), (v, m) => besselStd(v, m) + 1e-6, 1 + 1e-6);
}

export function drGrpo(input: GrpoInput): Matrix {
  return normalise(input, groupsOf(input), () => 1, 1);
}

// Outcome-only: there is no other term for rewardGtCoef to weigh against.
const outcome = ({ acc, mask, n }: AdvantageInput, fn: (input: GrpoInput) => Matrix): Matrix => fn({ rewards: acc, mask, n });

registerAdvantage({ name: 'grpo', needs: 'outcome', candidates: false, estimate: (input) => ({ advantages: outcome(input, grpo) }) });
registerAdvantage({ name: 'drgrpo', needs: 'outcome', candidates: false, estimate: (input) => ({ advantages: outcome(input, drGrpo) }) });
