// Golden checks of the DistRL native objectives: candidate set, candidate TD, Tok-PPO + Dist-PPO losses and
// gradients. The advantages between TD and loss are the TS estimators' (checked in distrl_advantages.ts); here the
// loss takes the golden advantages so that each stage is judged on its own.
import { distrlCandidates, distrlLoss, distrlTd } from '../../../lib/ops/objectives.js';
import { tidy } from '../../../lib/tensor/index.js';
import { tensorOf, type FamilyCheck } from '../harness.js';

const tol = (dtype: string, kind: 'loss' | 'grad') => (dtype === 'float64' ? 1e-9 : kind === 'loss' ? 1e-5 : 1e-4);

export const distrl: FamilyCheck = async ({ params, inputs, outputs }, expectClose, dtype) => {
  await tidy(async () => {
    const mask = tensorOf(inputs.mask, dtype);
    const tokens = tensorOf(inputs.tokens, 'int64');
    const candidates = await distrlCandidates({
      oldLogits: tensorOf(inputs.old_logits, dtype),
      tokens,
      mask,
      k: params.K,
      minP: params.min_p,
      topP: params.top_p,
      temperature: params.temperature,
    });
    expectClose('candidate_indices', candidates.candidateIndices, outputs.candidate_indices, 0);
    expectClose('candidate_mask', candidates.candidateMask, outputs.candidate_mask, 0);
    expectClose('old_topk_logprobs', candidates.oldTopkLogprobs, outputs.old_topk_logprobs, tol(dtype, 'loss'));
    expectClose('old_log_prob', candidates.oldLogProb, outputs.old_log_prob, tol(dtype, 'loss'));

    const td = await distrlTd({
      rmLogits: tensorOf(inputs.rm_logits, dtype),
      candidateIndices: candidates.candidateIndices,
      oldTopkLogprobs: candidates.oldTopkLogprobs,
      mask,
      beta: params.beta,
      temperature: params.temperature,
    });
    expectClose('rm_topk_logprobs', td.rmTopkLogprobs, outputs.rm_topk_logprobs, tol(dtype, 'loss'));
    // TD is a difference of two log-probs times β=10: judged on the log-probs' scale in float32.
    expectClose('candidate_td', td.candidateTd, outputs.candidate_td, tol(dtype, 'loss') * 10);
    expectClose('step_rewards', td.stepRewards, outputs.step_rewards, tol(dtype, 'loss') * 10);

    const common = {
      oldLogProb: candidates.oldLogProb,
      oldTopkLogprobs: candidates.oldTopkLogprobs,
      candidateMask: candidates.candidateMask,
      advantages: tensorOf(outputs.advantages, dtype),
      scaledCandidateTd: tensorOf(outputs.scaled_candidate_td, dtype),
      mask,
      clipRatioLow: params.clip_ratio_low,
      clipRatioHigh: params.clip_ratio_high,
      clipRatioC: params.clip_ratio_c,
      cliprangeTopk: params.cliprange_topk,
      alpha: params.alpha,
      temperature: params.temperature,
    };
    // From logits (one fused gather over the candidates): the gradient w.r.t. the new logits.
    const newLogits = tensorOf(inputs.new_logits, dtype);
    newLogits.requiresGrad = true;
    const fused = await distrlLoss({ ...common, newLogits, candidateIndices: candidates.candidateIndices });
    await fused.loss.backwardAsync();
    expectClose('grad_new_logits', newLogits.grad, outputs.grad_new_logits, tol(dtype, 'grad'));
    expectClose('log_prob', fused.logProb, outputs.log_prob, tol(dtype, 'loss'));
    expectClose('policy_topk_logprobs', fused.policyTopkLogprobs, outputs.policy_topk_logprobs, tol(dtype, 'loss'));

    // From log-prob leaves: the gradients w.r.t. log_prob and the candidate log-probs, and every loss output.
    const logProb = fused.logProb.detach();
    logProb.requiresGrad = true;
    const policyTopk = fused.policyTopkLogprobs.detach();
    policyTopk.requiresGrad = true;
    const out = await distrlLoss({ ...common, logProb, policyTopkLogprobs: policyTopk });
    await out.loss.backwardAsync();
    expectClose('grad_log_prob', logProb.grad, outputs.grad_log_prob, tol(dtype, 'grad'));
    expectClose('grad_policy_topk_logprobs', policyTopk.grad, outputs.grad_policy_topk_logprobs, tol(dtype, 'grad'));
    expectClose('pg_loss', out.pgLoss, outputs.pg_loss, tol(dtype, 'loss'));
    expectClose('topk_pg_loss', out.topkPgLoss, outputs.topk_pg_loss, tol(dtype, 'loss'));
    expectClose('total_loss', out.loss, outputs.total_loss, tol(dtype, 'loss'));
    expectClose('pg_losses_mat', out.pgLossesMat, outputs.pg_losses_mat, tol(dtype, 'loss'));
    expectClose('topk_pg_losses_mat', out.topkPgLossesMat, outputs.topk_pg_losses_mat, tol(dtype, 'loss'));
    expectClose('pg_clipfrac', out.pgClipfrac, outputs.pg_clipfrac, tol(dtype, 'loss'));
    expectClose('ppo_kl', out.ppoKl, outputs.ppo_kl, tol(dtype, 'loss'));
    expectClose('pg_clipfrac_lower', out.pgClipfracLower, outputs.pg_clipfrac_lower, tol(dtype, 'loss'));
    expectClose('topk_pg_clipfrac', out.topkPgClipfrac, outputs.topk_pg_clipfrac, tol(dtype, 'loss'));
    expectClose('topk_ppo_kl', out.topkPpoKl, outputs.topk_ppo_kl, tol(dtype, 'loss'));
    expectClose('topk_pg_clipfrac_lower', out.topkPgClipfracLower, outputs.topk_pg_clipfrac_lower, tol(dtype, 'loss'));
  });
};
