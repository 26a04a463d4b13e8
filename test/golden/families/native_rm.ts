// Golden checks of the reward-model objectives computed by the native fused ops (float64 and float32).
import { dpoOnline, dpoRm, implicitPrmCe, implicitPrmOnline, ipvrmOffline, ipvrmOnline } from '../../../lib/ops/objectives.js';
import { type Tensor, tidy } from '../../../lib/tensor/index.js';
import { tensorOf, type FamilyCheck } from '../harness.js';

/** Runs `loss` builder, backpropagates to fresh logits, returns the gradient. */
async function gradOf(logitsValue: unknown, dtype: 'float64' | 'float32', loss: (logits: Tensor) => Promise<Tensor>): Promise<Tensor> {
  const logits = tensorOf(logitsValue, dtype);
  logits.requiresGrad = true;
  await (await loss(logits)).backwardAsync();
  return logits.grad!;
}

// Loss tolerances: 1e-9 in float64, 1e-5 (losses) / 1e-4 (grads) in float32.
const tol = (dtype: string, kind: 'loss' | 'grad') => (dtype === 'float64' ? 1e-9 : kind === 'loss' ? 1e-5 : 1e-4);

export const ipvrm_offline: FamilyCheck = async ({ params, inputs, outputs }, expectClose, dtype) => {
  await tidy(async () => {
    const common = {
      refLogits: tensorOf(inputs.ref_logits, dtype),
      tokens: tensorOf(inputs.tokens, 'int64'),
      mask: tensorOf(inputs.mask, dtype),
      labels: tensorOf(inputs.labels, dtype),
      beta: params.beta,
      margin: params.margin,
    };
    let reference: Awaited<ReturnType<typeof ipvrmOffline>> | undefined;
    const grad = await gradOf(inputs.logits, dtype, async (logits) => {
      reference = await ipvrmOffline({ ...common, logits });
      return reference.loss;
    });
    const out = reference!;
    expectClose('policy_logprobs', out.policyLogprobs, outputs.policy_logprobs, tol(dtype, 'loss'));
    expectClose('ref_logprobs', out.refLogprobs, outputs.ref_logprobs, tol(dtype, 'loss'));
    expectClose('token_rewards', out.logRatio, outputs.token_rewards, tol(dtype, 'loss'));
    expectClose('normalized_prefix_values', out.normalizedPrefixValues, outputs.normalized_prefix_values, tol(dtype, 'loss'));
    expectClose('per_token_loss', out.perTokenLoss, outputs.per_token_loss, tol(dtype, 'loss'));
    expectClose('loss', out.loss, outputs.loss, tol(dtype, 'loss'));
    expectClose('prefix_accuracy', out.prefixAccuracy, outputs.prefix_accuracy, tol(dtype, 'loss'));
    expectClose('final_scores', out.finalScores, outputs.final_scores, tol(dtype, 'loss'));
    expectClose('grad_logits', grad, outputs.grad_logits, tol(dtype, 'grad'));

    // d loss / d token_rewards: the same objective fed the log ratios directly.
    const logRatio = out.logRatio.detach();
    logRatio.requiresGrad = true;
    const fromRatio = await ipvrmOffline({ logRatio, mask: common.mask, labels: common.labels, beta: params.beta, margin: params.margin });
    await fromRatio.loss.backwardAsync();
    expectClose('grad_token_rewards', logRatio.grad, outputs.grad_token_rewards, tol(dtype, 'grad'));

    for (const weighting of ['uniform', 'late', 'early'] as const) {
      let paper: Awaited<ReturnType<typeof ipvrmOffline>> | undefined;
      const paperGrad = await gradOf(inputs.logits, dtype, async (logits) => {
        paper = await ipvrmOffline({ ...common, logits, weighting });
        return paper.loss;
      });
      expectClose(`paper_${weighting}_loss`, paper!.loss, outputs[`paper_${weighting}_loss`], tol(dtype, 'loss'));
      expectClose(`paper_${weighting}_seq_loss`, paper!.seqLoss, outputs[`paper_${weighting}_seq_loss`], tol(dtype, 'loss'));
      expectClose(`paper_${weighting}_grad_logits`, paperGrad, outputs[`paper_${weighting}_grad_logits`], tol(dtype, 'grad'));
    }
  });
};

export const implicit_prm_ce: FamilyCheck = async ({ params, inputs, outputs }, expectClose, dtype) => {
  await tidy(async () => {
    const common = {
      refLogits: tensorOf(inputs.ref_logits, dtype),
      tokens: tensorOf(inputs.tokens, 'int64'),
      mask: tensorOf(inputs.mask, dtype),
      labels: tensorOf(inputs.labels, dtype),
      beta: params.beta,
    };
    for (const [form, prefix] of [
      ['bce_logits', ''],
      ['prime', 'prime_ce_'],
    ] as const) {
      let result: Awaited<ReturnType<typeof implicitPrmCe>> | undefined;
      const grad = await gradOf(inputs.logits, dtype, async (logits) => {
        result = await implicitPrmCe({ ...common, logits, form });
        return result.loss;
      });
      if (form === 'bce_logits') {
        expectClose('token_rewards', result!.logRatio, outputs.token_rewards, tol(dtype, 'loss'));
        expectClose('seq_logits', result!.seqLogits, outputs.seq_logits, tol(dtype, 'loss'));
      }
      expectClose(`${prefix}loss`, result!.loss, outputs[`${prefix}loss`], tol(dtype, 'loss'));
      expectClose(`${prefix}grad_logits`, grad, outputs[`${prefix}grad_logits`], tol(dtype, 'grad'));
    }
  });
};

export const dpo_rm: FamilyCheck = async ({ params, inputs, outputs }, expectClose, dtype) => {
  await tidy(async () => {
    for (const reduction of ['sum', 'mean'] as const) {
      const prefix = `bt_${reduction}_`;
      let result: Awaited<ReturnType<typeof dpoRm>> | undefined;
      const grad = await gradOf(inputs.logits, dtype, async (logits) => {
        result = await dpoRm({
          logits,
          refLogits: tensorOf(inputs.ref_logits, dtype),
          tokens: tensorOf(inputs.tokens, 'int64'),
          mask: tensorOf(inputs.mask, dtype),
          beta: params.beta,
          gamma: params.gamma,
          reduction,
        });
        return result.loss;
      });
      expectClose(`${prefix}loss`, result!.loss, outputs[`${prefix}loss`], tol(dtype, 'loss'));
      expectClose(`${prefix}pair_logits`, result!.pairLogits, outputs[`${prefix}pair_logits`], tol(dtype, 'loss'));
      expectClose(`${prefix}seq_rewards`, result!.seqRewards, outputs[`${prefix}seq_rewards`], tol(dtype, 'loss'));
      expectClose(`${prefix}grad_logits`, grad, outputs[`${prefix}grad_logits`], tol(dtype, 'grad'));
    }
  });
};

export const ipvrm_online: FamilyCheck = async ({ params, inputs, outputs }, expectClose, dtype) => {
  await tidy(async () => {
    const common = () => ({
      refLogits: tensorOf(inputs.old_logits, dtype),
      tokens: tensorOf(inputs.tokens, 'int64'),
      mask: tensorOf(inputs.mask, dtype),
      acc: tensorOf(inputs.acc, dtype),
      groupIds: tensorOf(inputs.prompt_group_id, 'int64'),
      sampleRank: tensorOf(inputs.sample_rank_in_group, 'int64'),
      beta: params.beta,
    });
    const variants = [
      ['adb_dlw_', true, true],
      ['plain_', false, false],
      ['dlw_only_', false, true],
      ['adb_only_', true, false],
    ] as const;
    for (const [prefix, useAdb, useDlw] of variants) {
      let result: Awaited<ReturnType<typeof ipvrmOnline>> | undefined;
      const grad = await gradOf(inputs.rm_logits, dtype, async (logits) => {
        result = await ipvrmOnline({ ...common(), logits, margin: params.base_margin, useAdb, useDlw });
        return result.loss;
      });
      expectClose(`${prefix}dlw_weight`, result!.weights, outputs[`${prefix}dlw_weight`], tol(dtype, 'loss'));
      expectClose(`${prefix}margin`, result!.margins, outputs[`${prefix}margin`], tol(dtype, 'loss'));
      expectClose(`${prefix}loss`, result!.loss, outputs[`${prefix}loss`], tol(dtype, 'loss'));
      expectClose(`${prefix}loss_per_seq`, result!.lossPerSeq, outputs[`${prefix}loss_per_seq`], tol(dtype, 'loss'));
      expectClose(`${prefix}grad_logits`, grad, outputs[`${prefix}grad_logits`], tol(dtype, 'grad'));
      if (prefix === 'adb_dlw_') {
        expectClose('log_ratio', result!.logRatio, outputs.log_ratio, tol(dtype, 'loss'));
        expectClose('logits_per_token', result!.logitsPerToken, outputs.logits_per_token, tol(dtype, 'loss'));
      }
    }
    for (const form of ['bce', 'adb'] as const) {
      let result: Awaited<ReturnType<typeof implicitPrmOnline>> | undefined;
      const grad = await gradOf(inputs.rm_logits, dtype, async (logits) => {
        result = await implicitPrmOnline({ ...common(), logits, margin: params.base_margin, form });
        return result.loss;
      });
      expectClose(`implicitprm_${form}_loss`, result!.loss, outputs[`implicitprm_${form}_loss`], tol(dtype, 'loss'));
      expectClose(`implicitprm_${form}_grad_logits`, grad, outputs[`implicitprm_${form}_grad_logits`], tol(dtype, 'grad'));
    }
    let dpo: Awaited<ReturnType<typeof dpoOnline>> | undefined;
    const grad = await gradOf(inputs.rm_logits, dtype, async (logits) => {
      dpo = await dpoOnline({ ...common(), logits });
      return dpo.loss;
    });
    expectClose('dpo_chosen_idx', dpo!.chosenIdx, outputs.dpo_chosen_idx, 0);
    expectClose('dpo_rejected_idx', dpo!.rejectedIdx, outputs.dpo_rejected_idx, 0);
    expectClose('dpo_pair_logits', dpo!.pairLogits, outputs.dpo_pair_logits, tol(dtype, 'loss'));
    expectClose('dpo_loss_sum', dpo!.lossSum, outputs.dpo_loss_sum, tol(dtype, 'loss'));
    expectClose('dpo_loss_mean', dpo!.loss, outputs.dpo_loss_mean, tol(dtype, 'loss'));
    expectClose('dpo_grad_logits_of_mean', grad, outputs.dpo_grad_logits_of_mean, tol(dtype, 'grad'));
  });
};
