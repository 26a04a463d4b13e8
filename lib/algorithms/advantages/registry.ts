// The advantage-estimator registry (as verl's register_adv_est): every estimator takes one input type, is registered
// under its name by the file that defines it, and the RL loop looks it up by config.advantage.estimator. A new
// estimator is one file (its math and its registration) plus one import line in index.ts.
import type { Matrix } from '../masked.js';

import type { Conventions } from '../../ops/objectives.js';
import { Registry } from '../../util/registry.js';

/** What every estimator receives; each reads the fields its `needs` names and ignores the rest. */
export interface AdvantageInput {
  /** Outcome score per row [B] (0/1 verdicts or any float); rows form contiguous prompt groups of n. */
  acc: number[];
  /** Response mask [B][T]. */
  mask: Matrix;
  n: number;
  /** The reward model's log π_φ − log π_ref at the sampled tokens [B][T] (needs: 'token-rewards'). */
  tokenLogRatio?: Matrix;
  /** β·(log π_φ − log π_ref) at π_old's candidates [B][T][K], slot 0 the sampled token (needs: 'candidate-td'). */
  candidateTd?: number[][][];
  /** β of the implicit reward (PRIME scales its token rewards by it). */
  beta?: number;
  gamma?: number;
  lam?: number;
  /** Weight of the outcome term. */
  rewardGtCoef?: number;
  /** Weight of the GAE over the reward model's TD (grpo-prm, distrl). */
  rewardGaeCoef?: number;
  /** Weight of the implicit token rewards in PRIME's RLOO. */
  rewardDpoCoef?: number;
  conventions?: Conventions;
}

export interface AdvantageOutput {
  /** Sampled-token advantages [B][T], zero at padding. */
  advantages: Matrix;
  /** Dist-PPO's candidate advantages [B][T][K] (estimators with `candidates: true`). */
  candidateAdvantages?: number[][][];
}

export interface AdvantageEstimator {
  readonly name: string;
  /** What the estimator reads besides the outcomes: nothing, the RM's token log ratios, or its candidate TD. */
  readonly needs: 'outcome' | 'token-rewards' | 'candidate-td';
  /** Whether it returns candidate advantages (what Dist-PPO trains on). */
  readonly candidates: boolean;
  estimate(input: AdvantageInput): AdvantageOutput;
}

const estimators = new Registry<AdvantageEstimator>('advantage estimator');

export const registerAdvantage = (estimator: AdvantageEstimator): AdvantageEstimator => estimators.register(estimator);
export const getAdvantage = (name: string): AdvantageEstimator => estimators.get(name);
export const listAdvantages = (): string[] => estimators.names();

/** The input field an estimator needs, or a clear error naming the estimator and the field. */
export function required<K extends 'tokenLogRatio' | 'candidateTd'>(
  input: AdvantageInput,
  key: K,
  estimator: string,
): NonNullable<AdvantageInput[K]> {
  const value = input[key];
  if (value === undefined) throw new Error(`advantage estimator '${estimator}' needs ${key} (from a reward model)`);
  return value as NonNullable<AdvantageInput[K]>;
}
