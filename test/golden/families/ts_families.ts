// Golden checks of the TypeScript estimators and scores (float64): GRPO, PRIME, DistRL advantages, ProcessBench, BoN.
import { bonScores, selectBest } from '../../../lib/eval/bon.js';
import { evaluateProcessBench, STEP_SCORE_MODES } from '../../../lib/eval/processbench.js';
import { distrlAdvantages, drGrpo, getAdvantage, grpo, grpoVerl, prime, primeOriginal } from '../../../lib/algorithms/advantages/index.js';
import { prefixValues } from '../../../lib/ops/objectives.js';
import { tidy } from '../../../lib/tensor/index.js';
import { tensorOf, type FamilyCheck } from '../harness.js';

type M = number[][];

export const grpoFamily: FamilyCheck = ({ params, inputs, outputs }, expectClose) => {
  const rewards = inputs.acc as number[];
  const mask = inputs.mask as M;
  const index = inputs.index as number[];
  expectClose('ipvrm_grpo_advantages', grpo({ rewards, mask, n: params.n }), outputs.ipvrm_grpo_advantages);
  expectClose('verl_grpo_advantages', grpoVerl({ rewards, mask, index }), outputs.verl_grpo_advantages);
  expectClose('verl_grpo_advantages_no_std', drGrpo({ rewards, mask, index }), outputs.verl_grpo_advantages_no_std);
  // The registered estimators (contiguous groups of n, as the golden index is) give the same.
  const input = { acc: rewards, mask, n: params.n };
  expectClose('ipvrm_grpo_advantages', getAdvantage('grpo').estimate(input).advantages, outputs.ipvrm_grpo_advantages);
  expectClose('verl_grpo_advantages_no_std', getAdvantage('drgrpo').estimate(input).advantages, outputs.verl_grpo_advantages_no_std);
};

export const primeFamily: FamilyCheck = async ({ params, inputs, outputs }, expectClose) => {
  const mask = inputs.mask as M;
  // q from the native prefix-value op, zeroed from each row's length on (the reference's q[b, t ≥ L] = 0).
  const raw = await tidy(async () => {
    const out = await prefixValues({
      logits: tensorOf(inputs.rm_logits, 'float64'),
      refLogits: tensorOf(inputs.ref_logits, 'float64'),
      tokens: tensorOf(inputs.tokens, 'int64'),
      mask: tensorOf(inputs.mask, 'float64'),
    });
    return out.logRatio.toNested() as M;
  });
  const q = raw.map((row, b) => row.map((v, t) => (mask[b][t] ? v : 0)));
  expectClose('q', q, outputs.q);
  const common = { q, mask, acc: inputs.acc as number[], n: params.n };
  const verl = prime({ ...common, beta: params.beta, rewardDpoCoef: params.reward_dpo_coef, rewardGtCoef: params.reward_gt_coef });
  expectClose('verl_token_level_scores', verl.tokenScores, outputs.verl_token_level_scores);
  expectClose('verl_rm_scores_batchnorm', verl.normalisedScores, outputs.verl_rm_scores_batchnorm);
  expectClose('verl_rloo_final_reward', verl.finalReward, outputs.verl_rloo_final_reward);
  expectClose('verl_returns', verl.returns, outputs.verl_returns);
  expectClose('verl_advantages', verl.advantages, outputs.verl_advantages);
  const original = primeOriginal(common);
  expectClose('orig_token_scores_token', original.tokenScores, outputs.orig_token_scores_token);
  expectClose('orig_token_scores_whole', primeOriginal({ ...common, granularity: 'whole' }).tokenScores, outputs.orig_token_scores_whole);
  expectClose('orig_rm_scores_batchnorm', original.normalisedScores, outputs.orig_rm_scores_batchnorm);
  expectClose('orig_returns', original.returns, outputs.orig_returns);
  expectClose('orig_advantages', original.advantages, outputs.orig_advantages);
  const input = {
    tokenLogRatio: q,
    mask,
    acc: common.acc,
    n: params.n,
    beta: params.beta,
    rewardDpoCoef: params.reward_dpo_coef,
    rewardGtCoef: params.reward_gt_coef,
  };
  expectClose('verl_advantages', getAdvantage('prime').estimate(input).advantages, outputs.verl_advantages);
  expectClose('orig_advantages', getAdvantage('prime-original').estimate(input).advantages, outputs.orig_advantages);
};

/** The advantage stage of DistRL, fed the golden candidate TD (the native stages are checked in native_distrl.ts). */
export const distrlAdvantageFamily: FamilyCheck = ({ params, inputs, outputs }, expectClose) => {
  const common = {
    candidateTd: outputs.candidate_td as number[][][],
    mask: inputs.mask as M,
    acc: inputs.acc as number[],
    n: params.n,
    gamma: params.gamma,
    lam: params.lam,
    rewardGtCoef: params.reward_gt_coef,
  };
  const ref = distrlAdvantages({ ...common, rewardGaeCoef: params.reward_gae_coef });
  expectClose('prefix_values', ref.prefixValues, outputs.prefix_values);
  expectClose('prefix_value_std', ref.prefixValueStd, outputs.prefix_value_std);
  expectClose('sampled_td_mean', ref.sampledTdMean, outputs.sampled_td_mean);
  expectClose('td_for_gae', ref.tdForGae, outputs.td_for_gae);
  expectClose('gae_raw', ref.gaeRaw, outputs.gae_raw);
  expectClose('gae_whitened', ref.gae, outputs.gae_whitened);
  expectClose('grpo', ref.grpo, outputs.grpo);
  expectClose('advantages', ref.advantages, outputs.advantages);
  expectClose('scaled_candidate_td', ref.scaledCandidateTd, outputs.scaled_candidate_td);
  const paper = distrlAdvantages({ ...common, rewardGaeCoef: 1, conventions: 'paper' });
  expectClose('paper_td_hat', paper.tdHat, outputs.paper_td_hat);
  expectClose('paper_gae', paper.gae, outputs.paper_gae);
  expectClose('paper_advantages_coef1', paper.advantages, outputs.paper_advantages_coef1);
  // The registered estimators: distrl (A and Â) and grpo-prm (A alone), in both conventions.
  const input = { ...common, rewardGaeCoef: params.reward_gae_coef };
  const registered = getAdvantage('distrl').estimate(input);
  expectClose('advantages', registered.advantages, outputs.advantages);
  expectClose('scaled_candidate_td', registered.candidateAdvantages, outputs.scaled_candidate_td);
  expectClose('advantages', getAdvantage('grpo-prm').estimate(input).advantages, outputs.advantages);
  const paperInput = { ...common, rewardGaeCoef: 1, conventions: 'paper' as const };
  expectClose('paper_advantages_coef1', getAdvantage('grpo-prm').estimate(paperInput).advantages, outputs.paper_advantages_coef1);
};

export const processbenchFamily: FamilyCheck = ({ params, inputs, outputs }, expectClose) => {
  const labels = inputs.labels as number[];
  const items = labels.map((label, i) => ({
    label,
    rawReward: (inputs.raw_reward as M)[i],
    firstBoundary: (inputs.first_boundary as number[])[i],
    stepEnds: (inputs.step_ends as M)[i],
  }));
  const report = evaluateProcessBench(items, { coef: params.coef, numThresholds: params.num_thresholds });
  expectClose('reward', report.rewards.map((r) => r.reward).flat(), (outputs.reward as M).flat());
  expectClose('avg_reward', report.rewards.map((r) => r.avgReward).flat(), (outputs.avg_reward as M).flat());
  for (const mode of STEP_SCORE_MODES) {
    const m = report.modes[mode];
    expectClose(`${mode}_scores`, m.scores.flat(), (outputs[`${mode}_scores`] as M).flat());
    expectClose(`${mode}_best_threshold`, m.best.threshold, outputs[`${mode}_best_threshold`], 0);
    expectClose(`${mode}_best_f1`, m.best.f1, outputs[`${mode}_best_f1`]);
    expectClose(`${mode}_preds_at_best`, m.best.predictions, outputs[`${mode}_preds_at_best`], 0);
    // The ImplicitPRM threshold is absent from the file when no F1 was above 0.
    const implicitKey = `${mode}_implicitprm_best_threshold`;
    if (implicitKey in outputs) expectClose(implicitKey, m.implicitPrmBest.threshold, outputs[implicitKey], 0);
    else expectClose(implicitKey, m.implicitPrmBest.threshold === undefined ? 1 : 0, 1, 0);
    expectClose(`${mode}_implicitprm_best_f1`, m.implicitPrmBest.f1, outputs[`${mode}_implicitprm_best_f1`]);
    expectClose(`${mode}_preds_at_0.5`, m.atHalf.predictions, outputs[`${mode}_preds_at_0.5`], 0);
    expectClose(`${mode}_acc_correct_at_0.5`, m.atHalf.accCorrect, outputs[`${mode}_acc_correct_at_0.5`]);
    expectClose(`${mode}_acc_error_at_0.5`, m.atHalf.accError, outputs[`${mode}_acc_error_at_0.5`]);
    expectClose(`${mode}_f1_at_0.5`, m.atHalf.f1, outputs[`${mode}_f1_at_0.5`]);
  }
};

export const bonFamily: FamilyCheck = ({ params, inputs, outputs }, expectClose) => {
  const candidates = (inputs.token_logratio as M).map((tokenLogratio, i) => ({ tokenLogratio, stepEnds: (inputs.step_ends as M)[i] }));
  const scores = candidates.map((c) => bonScores(c, params.coef, params.beta));
  expectClose(
    'accumulative',
    scores.flatMap((s) => s.accumulative),
    (outputs.accumulative as M).flat(),
  );
  expectClose(
    'single',
    scores.flatMap((s) => s.single),
    (outputs.single as M).flat(),
  );
  const keys = [
    ['acc_min', 'accMin'],
    ['acc_sum', 'accSum'],
    ['single_min', 'singleMin'],
    ['single_sum', 'singleSum'],
    ['ipvrm_final_vbar', 'ipvrmFinalVbar'],
  ] as const;
  for (const [key, field] of keys) {
    const values = scores.map((s) => s[field]);
    expectClose(key, values, outputs[key]);
    expectClose(`selected_${key}`, selectBest(values), outputs[`selected_${key}`], 0);
  }
  expectClose(
    'ipvrm_final_sigmoid',
    scores.map((s) => s.ipvrmFinalSigmoid),
    outputs.ipvrm_final_sigmoid,
  );
  expectClose(
    'seq_logratio_sum',
    scores.map((s) => s.seqLogratioSum),
    outputs.seq_logratio_sum,
  );
};
