// RLOO on the outcome (verl's compute_rloo_outcome_advantage): each response's score minus the mean of the other
// responses to its prompt, r_i·n/(n−1) − mean_g·n/(n−1), broadcast over its tokens. Registered as 'rloo'.
import { broadcastRows } from '../masked.js';
import { maskedRloo } from './prime.js';
import { registerAdvantage } from './registry.js';

registerAdvantage({
  name: 'rloo',
  needs: 'outcome',
  candidates: false,
  estimate: ({ acc, mask, n }) => {
    if (acc.length !== mask.length) throw new Error(`acc has ${acc.length} rows, the mask ${mask.length}`);
    if (acc.some((r) => !Number.isFinite(r))) throw new Error('acc contains NaN or Inf');
    return { advantages: maskedRloo(broadcastRows(acc, mask), mask, n) };
  },
});
