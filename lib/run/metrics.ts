// Every metric a run logs to metrics.jsonl, with verl's name where verl has one, and the mapping from each stage's
// step record to its row. docs/METRICS.md lists the same names (test/metrics.test.ts checks that the page, this list
// and the rows agree).
import type { RlStep } from '../train/rl.js';
import type { RmStep } from '../train/rm.js';
import type { SftStep } from '../train/sft.js';
import type { MetricsRow, Stage } from './layout.js';

export interface MetricDoc {
  name: string;
  stages: readonly Stage[];
  description: string;
}

const rl = ['rl'] as const;
const all = ['sft', 'rm', 'rl'] as const;

export const METRICS: readonly MetricDoc[] = [
  // ---- RL: the actor (π_θ) ----
  {
    name: 'actor/loss',
    stages: rl,
    description: 'The actor loss: Σ coef × policy loss (Tok-PPO, Dist-PPO) − entropy bonus, mean over micro-batches.',
  },
  { name: 'actor/pg_loss', stages: rl, description: 'Tok-PPO loss on the sampled tokens (clipped surrogate, dual clip), mean over micro-batches.' },
  { name: 'actor/topk_pg_loss', stages: rl, description: "Dist-PPO loss over π_old's candidate tokens (before its coefficient α)." },
  { name: 'actor/pg_clipfrac', stages: rl, description: 'Share of response tokens whose Tok-PPO ratio is clipped.' },
  {
    name: 'actor/topk_pg_clipfrac',
    stages: rl,
    description: "Share of candidate slots whose Dist-PPO ratio is clipped (the paper's Dist-PPO clip fraction).",
  },
  { name: 'actor/ppo_kl', stages: rl, description: 'Mean log π_old − log π_θ over response tokens (0 on the first mini-batch, which is on-policy).' },
  { name: 'actor/entropy', stages: rl, description: 'Token-mean entropy of π_θ over response tokens.' },
  { name: 'actor/grad_norm', stages: rl, description: "Policy gradient norm before clipping (the step's last mini-batch)." },
  { name: 'actor/lr', stages: rl, description: 'Policy learning rate.' },
  // ---- RL: the implicit reward model (π_φ) ----
  {
    name: 'reward_model/loss',
    stages: ['rm', 'rl'],
    description: 'Reward-model loss: in RL the mean over its online optimizer steps; offline the step loss.',
  },
  {
    name: 'reward_model/acc',
    stages: rl,
    description:
      "Outcome accuracy of the reward model on the batch: share of rows whose implicit reward Σ_t β·log π_φ/π_ref has the outcome's sign, read as the advantages read it: after this batch's update with `rewardModel.update: before` (the default: accuracy on the batch it just trained on), before it with `after`.",
  },
  { name: 'reward_model/score', stages: rl, description: 'RM score of eq. 19, (log π_φ(y|x) − log π_ref(y|x)) / |y|, mean over the batch.' },
  { name: 'reward_model/pair_acc', stages: ['rm'], description: "Share of the step's pairs whose correct response scores above the incorrect one." },
  { name: 'reward_model/grad_norm', stages: ['rm'], description: 'Reward-model gradient norm before clipping.' },
  { name: 'reward_model/lr', stages: ['rm'], description: 'Reward-model learning rate.' },
  // ---- RL: the batch ----
  { name: 'critic/score/mean', stages: rl, description: 'Mean outcome score of every sampled rollout (before filtering): the sampled accuracy.' },
  { name: 'critic/advantages/mean', stages: rl, description: 'Mean sampled-token advantage over response tokens.' },
  { name: 'critic/advantages/max', stages: rl, description: 'Largest sampled-token advantage.' },
  { name: 'critic/advantages/min', stages: rl, description: 'Smallest sampled-token advantage.' },
  { name: 'batch/mixed_fraction', stages: rl, description: 'Share of sampled prompts whose responses have mixed outcomes.' },
  { name: 'batch/sequences', stages: rl, description: 'Sequences trained on (kept prompt groups × n).' },
  { name: 'response_length/mean', stages: rl, description: 'Mean response length of the trained sequences, in tokens.' },
  { name: 'response_length/max', stages: rl, description: 'Longest trained response, in tokens.' },
  { name: 'response_length/clip_ratio', stages: rl, description: 'Share of trained responses that hit rollout.maxNewTokens.' },
  {
    name: 'rollout/logprob_diff_mean',
    stages: rl,
    description:
      "Mean |log-prob the sampler reported − π_old's log-prob the trainer computed| over trained response tokens (near 0 when the sampler holds the policy's weights).",
  },
  { name: 'rollout/logprob_diff_max', stages: rl, description: 'The largest such difference.' },
  {
    name: 'candidates/size',
    stages: rl,
    description:
      "Mean size of π_old's candidate set per response token (Table 11): Σ candidates / response tokens of the batch. Each response's last token has an empty set, except with Dist-PPO under `conventions: paper`; so without Dist-PPO (the sampled token alone) it is 1 − sequences / response tokens, just under 1.",
  },
  {
    name: 'candidates/coverage',
    stages: rl,
    description: 'Mean π_old probability mass of the candidate set per response token (Table 11; an empty set counts 0).',
  },
  {
    name: 'val/accuracy',
    stages: rl,
    description: 'Held-out avg@k (k = eval.samples) on --eval-data, on evaluation steps (eval.every, the last); step 0 is before training.',
  },
  // ---- SFT ----
  { name: 'train/loss', stages: ['sft'], description: "Mean negative log-likelihood of the step's scored tokens." },
  { name: 'train/grad_norm', stages: ['sft'], description: 'Gradient norm before clipping.' },
  { name: 'train/lr', stages: ['sft'], description: 'Learning rate.' },
  // ---- timing and throughput (not reproducible: excluded when runs are compared) ----
  { name: 'timing_s/gen', stages: rl, description: 'Seconds sampling rollouts.' },
  { name: 'timing_s/verify', stages: rl, description: 'Seconds verifying them.' },
  { name: 'timing_s/old_log_prob', stages: rl, description: "Seconds of π_old's pass (log-probs and candidates)." },
  {
    name: 'timing_s/rm_update',
    stages: rl,
    description: "Seconds of the reward model's online update (absent without a reward model or with `rewardModel.update: none`).",
  },
  {
    name: 'timing_s/rm_score',
    stages: rl,
    description: "Seconds of the reward model's scoring pass (absent without a reward model or when the estimator reads no rewards).",
  },
  { name: 'timing_s/adv', stages: rl, description: 'Seconds computing advantages.' },
  { name: 'timing_s/update_actor', stages: rl, description: 'Seconds of the PPO update.' },
  { name: 'timing_s/eval', stages: rl, description: 'Seconds of held-out evaluation (evaluation steps only; absent on the others).' },
  { name: 'timing_s/step', stages: all, description: 'Seconds of the whole step.' },
  {
    name: 'perf/throughput',
    stages: all,
    description: 'Tokens processed per second of the step (RL: prompt + response tokens sampled; SFT/RM: tokens trained on).',
  },
];

/** Whether a metric depends on the machine's speed (timing, throughput) rather than on the run's numbers. */
export const isTimingMetric = (name: string): boolean => name.startsWith('timing_s/') || name.startsWith('perf/');

export function metricDoc(name: string): MetricDoc | undefined {
  return METRICS.find((metric) => metric.name === name);
}

/** A metrics row: `step` is the count of steps done (1 after the first); undefined values are left out. */
function row(step: number, values: Record<string, number | undefined>): MetricsRow {
  const out: MetricsRow = { step };
  for (const [name, value] of Object.entries(values)) if (value !== undefined) out[name] = value;
  return out;
}

const throughput = (tokens: number, seconds: number) => (seconds > 0 ? tokens / seconds : undefined);

export function sftMetrics(s: SftStep, stepSeconds: number): MetricsRow {
  return row(s.step + 1, {
    'train/loss': s.loss,
    'train/grad_norm': s.gradNorm,
    'train/lr': s.lr,
    'timing_s/step': stepSeconds,
    'perf/throughput': throughput(s.tokens, stepSeconds),
  });
}

export function rmMetrics(s: RmStep, stepSeconds: number): MetricsRow {
  return row(s.step + 1, {
    'reward_model/loss': s.loss,
    'reward_model/pair_acc': s.pairAccuracy,
    'reward_model/grad_norm': s.gradNorm,
    'reward_model/lr': s.lr,
    'timing_s/step': stepSeconds,
    'perf/throughput': throughput(s.tokens, stepSeconds),
  });
}

export function rlMetrics(s: RlStep): MetricsRow {
  const { timing } = s;
  return row(s.step + 1, {
    'actor/loss': s.loss,
    'actor/pg_loss': s.pgLoss,
    'actor/topk_pg_loss': s.topkPgLoss,
    'actor/pg_clipfrac': s.pgClipfrac,
    'actor/topk_pg_clipfrac': s.topkPgClipfrac,
    'actor/ppo_kl': s.ppoKl,
    'actor/entropy': s.entropy,
    'actor/grad_norm': s.gradNorm,
    'actor/lr': s.lr,
    'reward_model/loss': s.rmLoss,
    'reward_model/acc': s.rmAccuracy,
    'reward_model/score': s.rmScore,
    'critic/score/mean': s.accuracy,
    'critic/advantages/mean': s.advantages.mean,
    'critic/advantages/max': s.advantages.max,
    'critic/advantages/min': s.advantages.min,
    'batch/mixed_fraction': s.mixedFraction,
    'batch/sequences': s.sequences,
    'response_length/mean': s.meanResponseLength,
    'response_length/max': s.maxResponseLength,
    'response_length/clip_ratio': s.responseClipRatio,
    'rollout/logprob_diff_mean': s.rolloutLogprobDiff?.mean,
    'rollout/logprob_diff_max': s.rolloutLogprobDiff?.max,
    'candidates/size': s.candidateSize,
    'candidates/coverage': s.candidateCoverage,
    'val/accuracy': s.testAccuracy,
    'timing_s/gen': timing.gen,
    'timing_s/verify': timing.verify,
    'timing_s/old_log_prob': timing.oldLogProb,
    'timing_s/rm_update': timing.rmUpdate,
    'timing_s/rm_score': timing.rmScore,
    'timing_s/adv': timing.adv,
    'timing_s/update_actor': timing.updateActor,
    'timing_s/eval': timing.eval,
    'timing_s/step': timing.step,
    'perf/throughput': throughput(s.tokens, timing.step),
  });
}
