// Plain masked GAE over per-token rewards (δ_t given), for PPO-style critics-free baselines and tests.
import { maskedGae, shapeCheck, type Matrix } from '../masked.js';
import { registerAdvantage } from './registry.js';

export interface GaeInput {
  delta: Matrix;
  mask: Matrix;
  gamma?: number;
  lam?: number;
}

export const gae = registerAdvantage('gae', ({ delta, mask, gamma = 1, lam = 1 }: GaeInput): Matrix => {
  shapeCheck('delta', delta, mask);
  return maskedGae(delta, mask, gamma, lam);
});
