// DPO-RM online (implemented-math.md §1b, the reference's online DPO): in each prompt group the first k correct
// responses are paired with the first k incorrect ones (k = min of the two counts), and each pair contributes
// −logσ(β·(Σ log-ratio_chosen − Σ log-ratio_rejected)). `mean` divides the sum by the optimizer step's pair count
// (the reference's global mean), `sum` does not.
import { contiguousGroups } from '../masked.js';
import { dpoOnline } from '../../ops/objectives.js';
import { implicitScore, registerRewardModel } from './registry.js';

/**
 * (correct, incorrect) pairs of contiguous groups of n: Σ_g min(#correct_g, #incorrect_g), correct being an outcome
 * above 0.5 and incorrect one below (0.5 itself is neither, as the reference pairs them).
 */
export function outcomePairCount(acc: readonly number[], n: number): number {
  return contiguousGroups(acc.length, n).reduce((total, group) => {
    const count = (side: (a: number) => boolean) => group.filter((b) => side(acc[b])).length;
    return (
      total +
      Math.min(
        count((a) => a > 0.5),
        count((a) => a < 0.5),
      )
    );
  }, 0);
}

registerRewardModel({
  name: 'dpo-rm',
  learnsFrom: (acc, groupSize) => outcomePairCount(acc, groupSize) > 0,
  async update({ logits, logRatio, tokens, refLogprobs, mask, acc, groupSize, step }, { beta, dpoReduction }, options) {
    const pairs = outcomePairCount(step.acc, groupSize);
    if (pairs === 0) throw new Error('DPO-RM: the batch has no (correct, incorrect) pair: every prompt group has one outcome');
    const { lossSum } = await dpoOnline({ logits, logRatio, tokens, refLogprobs, mask, acc, groupSize, beta }, options);
    return dpoReduction === 'mean' ? lossSum.div(pairs) : lossSum;
  },
  score: implicitScore,
});
