// Implicit PRM online: the sequence logit z = β·Σ_t log π_φ/π_ref against the outcome (implemented-math.md §1b, §2a).
//   ce      PRIME's update (verl recipe): BCE on every row, unweighted.
//   online  the IPVRM release's baseline: BCE weighted by DLW (groups with one outcome weigh 0), or with useAdb the
//           ADB form −logσ(z·s − margin).
import { implicitPrmCe, implicitPrmOnline } from '../../ops/objectives.js';
import { implicitScore, registerRewardModel } from './registry.js';

registerRewardModel({
  name: 'implicit-prm',
  async update(
    { logits, logRatio, tokens, refLogprobs, mask, acc, groupSize, step },
    { beta, margin, useAdb, useDlw, uniformGroups, implicitPrmLoss, conventions },
    options,
  ) {
    const inputs = { logits, logRatio, tokens, refLogprobs, mask, beta };
    const { loss } =
      implicitPrmLoss === 'ce'
        ? await implicitPrmCe({ ...inputs, labels: acc }, options)
        : await implicitPrmOnline(
            {
              ...inputs,
              acc,
              groupSize,
              margin,
              useAdb,
              useDlw,
              trainUniformGroups: uniformGroups === 'train',
              form: useAdb ? 'adb' : 'bce',
              conventions,
            },
            options,
          );
    return loss.div(step.microBatches);
  },
  score: implicitScore,
});
