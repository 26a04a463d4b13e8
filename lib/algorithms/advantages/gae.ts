// Plain masked GAE over per-token rewards (δ_t given), for PPO-style critics-free baselines and tests.
import { maskedGae, shapeCheck, type Matrix } from '../masked.js';

export interface GaeInput {
  delta: Matrix;
  mask: Matrix;
  gamma?: number;
  lam?: number;
}

export function gae({ delta, mask, gamma = 1, lam = 1 }: GaeInput): Matrix {
  shapeCheck('delta', delta, mask);
  return maskedGae(delta, mask, gamma, lam);
}
