// Algorithms as presets: an algorithm is a partial RL config — which reward model trains online, which advantage
// estimator reads it, which policy losses the actor sums — merged under the user's config before validation, so any
// key a preset sets can be overridden. The settings are the released code's (implemented-math.md §5): the IPVRM
// release's distrl_config.yaml for GRPO, the {GRPO, DistRL} × {DPO-RM, Implicit PRM, IPVRM} grid and its online
// baselines (one trainer, β_train 10, RM lr 2e-6), verl's prime_trainer.yaml for PRIME, the PRIME repo for
// prime-original. A new algorithm is one entry here plus its YAML files in configs/rl/.

/** A partial RL config (validated after merging; see RlConfigSchema). */
export type Preset = Record<string, unknown>;

const tokPpo = { 'tok-ppo': 1 };
// distrl_config.yaml: pg_loss_coef 1.0, distrl_loss_coef 0.1.
const distPpo = { 'tok-ppo': 1, 'dist-ppo': 0.1 };

const grid = (kind: 'dpo-rm' | 'implicit-prm' | 'ipvrm', estimator: 'grpo-prm' | 'distrl'): Preset => ({
  rewardModel: { kind, ...(kind === 'implicit-prm' && { implicitPrmLoss: 'online' }) },
  advantage: { estimator },
  actor: { policyLosses: estimator === 'distrl' ? distPpo : tokPpo },
});

const prime: Preset = {
  rollout: { oversample: 4, accuracyBounds: [0.2, 0.8] },
  // verl's standard PPO: a symmetric clip at 0.2, and the entropy bonus of prime_trainer.yaml.
  actor: { policyLosses: tokPpo, clipRatioHigh: 0.2, entropyCoeff: 0.001 },
  rewardModel: { kind: 'implicit-prm', implicitPrmLoss: 'ce', beta: 0.05, lr: 1e-6, reference: 'frozen' },
  advantage: { estimator: 'prime', rewardGtCoef: 5 },
};

export const RL_PRESETS: Readonly<Record<string, Preset>> = {
  /** GRPO with verifiable rewards: outcome advantages, Tok-PPO, no reward model. */
  grpo: { rewardModel: { kind: 'none' }, advantage: { estimator: 'grpo' }, actor: { policyLosses: tokPpo } },
  'grpo-dpo': grid('dpo-rm', 'grpo-prm'),
  'grpo-iprm': grid('implicit-prm', 'grpo-prm'),
  'grpo-ipvrm': grid('ipvrm', 'grpo-prm'),
  'distrl-dpo': grid('dpo-rm', 'distrl'),
  'distrl-iprm': grid('implicit-prm', 'distrl'),
  'distrl-ipvrm': grid('ipvrm', 'distrl'),
  /** The paper's method under its short name: distrl-ipvrm. */
  distrl: grid('ipvrm', 'distrl'),
  /** PRIME, verl's recipe: the implicit PRM updated before its rewards are read, RLOO with both coefficients 5. */
  prime,
  /** The original PRIME repo: rewards from the RM before its update, RLOO returns summed without coefficients. */
  'prime-original': {
    ...prime,
    // Its PPO (core_algos.py) has no dual clip, and run_prime_main.sh sets entropy_coeff 0.
    actor: { ...(prime.actor as object), entropyCoeff: 0, dualClip: false },
    rewardModel: { ...(prime.rewardModel as object), update: 'after' },
    advantage: { estimator: 'prime-original' },
  },
};

export const RL_PRESET_NAMES = Object.keys(RL_PRESETS);
