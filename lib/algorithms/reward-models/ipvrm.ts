// IPVRM online (implemented-math.md §1b): BCE with margin on every prefix's length-normalised value v̄(t), per
// sequence token mean, ADB margins and DLW weights from the prompt group (groups with one outcome weigh 0).
import { ipvrmOnline } from '../../ops/objectives.js';
import { implicitScore, registerRewardModel } from './registry.js';

registerRewardModel({
  name: 'ipvrm',
  async update(
    { logits, logRatio, tokens, refLogprobs, mask, acc, groupSize, step },
    { beta, margin, useAdb, useDlw, uniformGroups, conventions },
    options,
  ) {
    const trainUniformGroups = uniformGroups === 'train';
    const { loss } = await ipvrmOnline(
      { logits, logRatio, tokens, refLogprobs, mask, acc, groupSize, beta, margin, useAdb, useDlw, trainUniformGroups, conventions },
      options,
    );
    return loss.div(step.microBatches);
  },
  score: implicitScore,
});
