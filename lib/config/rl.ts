// RL experiment configs: one zod schema is the single home of every RL setting and its default. `algorithm` names a
// preset (presets.ts) — the reward model trained online, the advantage estimator, the policy losses — merged under
// the config before validation; the names are checked against the three registries of lib/algorithms. Defaults are
// the IPVRM release's (implemented-math.md §5, distrl_config.yaml), except the sizes (prompts, samples, lengths),
// which a config for a given model sets. YAML files in configs/rl/.
import { z } from 'zod';
import { getAdvantage, listAdvantages } from '../algorithms/advantages/index.js';
import { getPolicyLoss, listPolicyLosses } from '../algorithms/policy-losses/index.js';
import { listRewardModels } from '../algorithms/reward-models/index.js';
import { LORA_TARGETS } from '../model/lora.js';
import type { RolloutOptions } from '../rollout/rollouts.js';
import { deriveSeed } from '../util/rng.js';

import { CheckpointSection, deepMerge, placementFields, readConfigFile } from './common.js';
import { RL_PRESET_NAMES, RL_PRESETS } from './presets.js';

export { RL_PRESETS, RL_PRESET_NAMES, type Preset } from './presets.js';

/** Accuracy bounds that keep any group with mixed outcomes: the IPVRM release's filter [0.01, 0.99] (bounds included). */
export const MIXED_ACCURACY_BOUNDS: readonly [number, number] = [0.01, 0.99];

const positiveInt = z.int().positive();
const probability = z.number().gt(0).lt(1);

const RolloutSection = z.strictObject({
  /** Prompt groups trained on per step (the reference's train_batch_size). */
  promptsPerStep: positiveInt.default(16),
  /** Responses per prompt (n). */
  samples: z.int().min(2).default(4),
  /** Prompts sampled per kept prompt: groups inside accuracyBounds are kept first (filter_and_downsample). */
  oversample: z.number().min(1).default(2),
  /**
   * A group trains first when its mean outcome lies within these bounds, both included (low ≤ mean ≤ high), and every
   * response is shorter than maxNewTokens − 1 tokens: [0.01, 0.99] in the IPVRM release (any mixed group), [0.2, 0.8]
   * in PRIME's recipe.
   */
  accuracyBounds: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([...MIXED_ACCURACY_BOUNDS]),
  temperature: z.number().positive().default(1),
  maxNewTokens: positiveInt.default(256),
  /** Responses sampled together. */
  batchSize: positiveInt.default(64),
  /** Where rollouts are sampled: local (the trainer's policy) or openai (an OpenAI-compatible server: prefix-rl serve, vLLM). */
  engine: z.enum(['local', 'openai']).default('local'),
  /** With engine openai: the server's API base URL (…/v1). */
  url: z.url().optional(),
  /** The served model's id (default: the first of the server's /v1/models). */
  model: z.string().min(1).optional(),
  /** The environment variable that holds the server's API key, if it wants one. */
  apiKeyEnv: z.string().min(1).default('OPENAI_API_KEY'),
  /**
   * How the policy's weights reach the server before each step's sampling: reload (prefix-rl serve's /v1/reload: a
   * checkpoint, or the adapter of a LoRA actor), vllm-lora (vLLM's /v1/load_lora_adapter; a LoRA actor), none (the
   * server samples from its own weights: off-policy).
   */
  sync: z.enum(['reload', 'vllm-lora', 'none']).default('reload'),
  /** A folder the trainer writes and the server reads (default: <run>/rollout-weights). */
  syncDir: z.string().min(1).optional(),
});

/** A LoRA adapter to train instead of the full weights (the paper's RL setting: rank 128, alpha 128). */
const LoraSection = z.strictObject({
  rank: positiveInt,
  alpha: z.number().positive(),
  /** Default: the seven projections; add lm_head for a LoRA on the LM head. */
  targetModules: z.array(z.enum(LORA_TARGETS)).min(1).optional(),
  rslora: z.boolean().default(false),
});

const ActorSection = z.strictObject({
  lr: z.number().positive().default(2e-5),
  weightDecay: z.number().min(0).default(0.01),
  maxGradNorm: z.number().positive().default(1),
  /** Optimizer steps per RL step, each over an equal share of the prompt groups (ppo_mini_batch). */
  miniBatches: positiveInt.default(1),
  /**
   * Most sequences per forward pass, rounded down to whole prompt groups. As in the reference, each micro-batch's
   * loss is its own token mean divided by the number of micro-batches: the whole batch's mean when the micro-batches
   * hold equal token counts, close to it otherwise.
   */
  microBatch: positiveInt.default(32),
  clipRatioLow: z.number().min(0).default(0.2),
  /** 0.28 (DAPO's clip-higher, the IPVRM release); PRIME's preset: 0.2 (verl's symmetric clip). */
  clipRatioHigh: z.number().min(0).default(0.28),
  /** Dual clip c for negative advantages. */
  clipRatioC: z.number().gt(1).default(3),
  /** Whether the dual clip applies (verl's, the IPVRM release's); the original PRIME repo: false. Never under conventions: paper. */
  dualClip: z.boolean().default(true),
  /** Symmetric clip of the Dist-PPO candidates. */
  cliprangeTopk: z.number().min(0).default(0.2),
  /**
   * Entropy bonus: the loss minus this × the token-mean entropy of π_θ. Default 0; PRIME: 0.001 (prime_trainer.yaml;
   * the released DistRL code computes one and then overwrites it, so 0 there).
   */
  entropyCoeff: z.number().min(0).default(0),
  /**
   * The actor's loss Σ coef × loss over registered policy losses (lib/algorithms/policy-losses): `tok-ppo` on the
   * sampled tokens, `dist-ppo` on π_old's candidates (its coefficient is the paper's α, 0.1). A coefficient of 0
   * drops a loss. Set by the preset.
   */
  policyLosses: z.record(z.string(), z.number().min(0)).default({ 'tok-ppo': 1 }),
  /** Candidate set of π_old: top-K (the sampled token forced into slot 0) with π_old > P_min. */
  candidateTopK: positiveInt.default(5),
  candidateMinP: probability.default(0.1),
  /** Train a new LoRA adapter on the policy (merged into the saved checkpoint by the CLI), not every weight. */
  lora: LoraSection.optional(),
});

const RewardModelSection = z.strictObject({
  /** The implicit reward model trained online (lib/algorithms/reward-models), or none. Set by the preset. */
  kind: z.string().default('none'),
  /** β of the implicit reward: 10 (the IPVRM release's β_train, for every model it trains); PRIME 0.05. */
  beta: z.number().positive().default(10),
  /** IPVRM margin m (ADB moves it by ∓logit μ). */
  margin: z.number().min(0).default(5),
  useAdb: z.boolean().default(true),
  useDlw: z.boolean().default(true),
  /**
   * Groups whose responses share one outcome: skip them (weight 0, the reference code) or train on them too (weight 1,
   * margin m). The paper's naive online update (its ablation, Fig. 6) is useAdb and useDlw false.
   */
  uniformGroups: z.enum(['skip', 'train']).default('skip'),
  /** Implicit PRM's loss: ce (PRIME: BCE on every row) or online (the IPVRM release: DLW-weighted BCE, ADB with useAdb). */
  implicitPrmLoss: z.enum(['ce', 'online']).default('online'),
  /** DPO-RM: mean over the optimizer step's (correct, incorrect) pairs (the release's online DPO, loss_type dpo) or their sum. */
  dpoReduction: z.enum(['mean', 'sum']).default('mean'),
  /** 2e-6 (distrl_config.yaml); PRIME 1e-6 (prime_trainer.yaml). */
  lr: z.number().positive().default(2e-6),
  maxGradNorm: z.number().positive().default(10),
  miniBatches: positiveInt.default(1),
  /** before: rewards come from the RM updated on this batch (both references); after: the original PRIME. */
  update: z.enum(['before', 'after', 'none']).default('before'),
  /** old: π_ref = π_old (the IPVRM release, and PRIME without a ref module); frozen: a fixed reference model (verl PRIME). */
  reference: z.enum(['old', 'frozen']).default('old'),
});

/** Held-out accuracy (avg@k) during training, on the evaluation prompts given to trainRl. */
const EvalSection = z.strictObject({
  /** Evaluate after every `every` steps and after the last (0: only after the last). */
  every: z.int().min(0).default(0),
  samples: positiveInt.default(4),
  /** The paper evaluates at T 0.6, top-p 0.95; the released eval script at T 0.7, top-p 0.8. */
  temperature: z.number().min(0).default(0.6),
  topP: z.number().gt(0).max(1).default(0.95),
  /** Default: rollout.maxNewTokens. */
  maxNewTokens: positiveInt.optional(),
});

const AdvantageSection = z.strictObject({
  /** The advantage estimator (lib/algorithms/advantages). Set by the preset. */
  estimator: z.string().default('grpo'),
  /** Weight of the outcome reward: 1 (distrl_config.yaml); PRIME 5 (prime_trainer.yaml). */
  rewardGtCoef: z.number().default(1),
  /** Weight of the whitened GAE over the IPVRM TD (reference 0.05; the paper's eq. 13 has none). */
  rewardGaeCoef: z.number().optional(),
  /** PRIME's weight of the implicit token rewards in RLOO. */
  rewardDpoCoef: z.number().default(5),
  gamma: z.number().min(0).max(1).default(1),
  lam: z.number().min(0).max(1).default(1),
});

export const RlConfigSchema = z.strictObject({
  /** The preset the config starts from (RL_PRESETS); its keys sit under the config's own. */
  algorithm: z.string(),
  steps: positiveInt.default(100),
  seed: z.int().min(0).default(0),
  /** reference: the released code's math; paper: the paper's (implemented-math.md §7). */
  conventions: z.enum(['reference', 'paper']).default('reference'),
  rollout: RolloutSection.default(RolloutSection.parse({})),
  actor: ActorSection.default(ActorSection.parse({})),
  rewardModel: RewardModelSection.default(RewardModelSection.parse({})),
  advantage: AdvantageSection.default(AdvantageSection.parse({})),
  eval: EvalSection.default(EvalSection.parse({})),
  checkpoint: CheckpointSection.default(CheckpointSection.parse({})),
  ...placementFields,
});

export type RlConfigInput = z.input<typeof RlConfigSchema>;
type Parsed = z.output<typeof RlConfigSchema>;

/** A config with every default filled in, including those that depend on the conventions. */
export interface RlConfig extends Parsed {
  advantage: Parsed['advantage'] & { rewardGaeCoef: number };
}

/** How held-out accuracy is sampled during RL (the eval section, with the rollout section's defaults). */
export function evalRolloutOptions(config: RlConfig): RolloutOptions {
  const { samples, temperature, topP, maxNewTokens } = config.eval;
  return {
    samples,
    temperature,
    topP,
    maxNewTokens: maxNewTokens ?? config.rollout.maxNewTokens,
    batchSize: config.rollout.batchSize,
    seed: deriveSeed(config.seed, 'eval'),
  };
}

/**
 * Merges the config over its preset, validates it (a clear error names each bad key) and fills in the defaults. The
 * reward model, estimator and losses must be registered and fit together.
 */
export function resolveRlConfig(input: unknown): RlConfig {
  const fail = (message: string): never => {
    throw new Error(`invalid RL config: ${message}`);
  };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail('an RL config must be a mapping');
  const { algorithm } = input as { algorithm?: unknown };
  if (typeof algorithm !== 'string') fail(`algorithm: name a preset (${RL_PRESET_NAMES.join(', ')})`);
  const preset = RL_PRESETS[algorithm as string] ?? fail(`algorithm: unknown preset '${algorithm}' (presets: ${RL_PRESET_NAMES.join(', ')})`);
  const result = RlConfigSchema.safeParse(deepMerge(preset, input as Record<string, unknown>));
  if (!result.success) fail(result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; '));
  const config = result.data!;
  const { kind } = config.rewardModel;
  if (kind !== 'none' && !listRewardModels().includes(kind)) {
    fail(`rewardModel.kind: unknown reward model '${kind}' (registered: none, ${listRewardModels().join(', ')})`);
  }
  if (!listAdvantages().includes(config.advantage.estimator)) {
    fail(`advantage.estimator: unknown estimator '${config.advantage.estimator}' (registered: ${listAdvantages().join(', ')})`);
  }
  const estimator = getAdvantage(config.advantage.estimator);
  const losses = Object.entries(config.actor.policyLosses).filter(([, coef]) => coef > 0);
  for (const [name] of losses) {
    if (!listPolicyLosses().includes(name)) fail(`actor.policyLosses: unknown policy loss '${name}' (registered: ${listPolicyLosses().join(', ')})`);
  }
  if (losses.length === 0) fail('actor.policyLosses: give at least one loss a positive coefficient');
  if (estimator.needs !== 'outcome' && kind === 'none') {
    fail(`advantage.estimator '${estimator.name}' reads a reward model's rewards, but rewardModel.kind is none`);
  }
  if (losses.some(([name]) => getPolicyLoss(name).candidates) && !estimator.candidates) {
    fail(`actor.policyLosses: dist-ppo trains on candidate advantages, which advantage.estimator '${estimator.name}' does not produce`);
  }
  const { rewardGaeCoef } = config.advantage;
  if (config.conventions === 'paper' && rewardGaeCoef !== undefined && rewardGaeCoef !== 1) {
    fail(
      `advantage.rewardGaeCoef ${rewardGaeCoef} contradicts conventions: paper (eq. 13 adds the GAE term with weight 1); drop one of the two keys`,
    );
  }
  const [low, high] = config.rollout.accuracyBounds;
  if (!(low < high)) fail(`rollout.accuracyBounds: the lower bound ${low} must be below the upper ${high}`);
  const { engine, url, sync } = config.rollout;
  if (engine === 'openai' && !url) fail('rollout.url: engine openai samples from a server: give its API base URL (e.g. http://host:8000/v1)');
  if (engine === 'local' && url) fail('rollout.url is given, but rollout.engine is local (set engine: openai to sample from the server)');
  if (engine === 'openai' && sync === 'vllm-lora' && !config.actor.lora) fail('rollout.sync vllm-lora loads LoRA adapters: it needs actor.lora');
  if (engine === 'openai' && sync === 'vllm-lora' && config.actor.lora?.targetModules?.includes('lm_head')) {
    fail(
      "rollout.sync vllm-lora: vLLM does not load an adapter on lm_head; drop it from actor.lora.targetModules, or serve with 'prefix-rl serve' (sync: reload)",
    );
  }
  if (kind !== 'none' && config.rollout.temperature !== 1) {
    // π_old's log-probs (the reference of the implicit reward and the PPO ratio) would be at T while the reward model
    // is trained and read at 1; the released code samples at 1.0.
    fail(`rollout.temperature must be 1 for ${config.algorithm} (its implicit reward is defined at temperature 1)`);
  }
  return {
    ...config,
    advantage: { ...config.advantage, rewardGaeCoef: config.advantage.rewardGaeCoef ?? (config.conventions === 'paper' ? 1 : 0.05) },
  };
}

/** Reads a YAML (or JSON) RL config and resolves it; `overrides` (e.g. from CLI flags) win over the file. */
export async function loadRlConfig(file: string, overrides: Record<string, unknown> = {}): Promise<RlConfig> {
  const parsed = await readConfigFile(file);
  try {
    return resolveRlConfig(deepMerge(parsed, overrides));
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
