// The settings of offline reward-model training (lib/train/rm.ts) that its config (lib/config/rm.ts) validates.

export const RM_METHODS = ['ipvrm', 'implicit-prm', 'dpo-rm'] as const;
export type RmMethod = (typeof RM_METHODS)[number];

/** How each mixed prompt's pair is chosen: a random correct and a random incorrect response, or the reference CLI's best_worst. */
export const PAIR_STRATEGIES = ['random', 'best-worst'] as const;
export type PairStrategy = (typeof PAIR_STRATEGIES)[number];

/**
 * IPVRM's reduction over prefixes: the reference's token mean over the batch; its effective per-sequence mean (the
 * README trains at micro-batch 1, where the token mean is each sequence's mean: the same as the paper's eq. 9,
 * `uniform`); the paper's early (eq. 17) and late (eq. 18) weightings.
 */
export const IPVRM_WEIGHTINGS = ['token-mean', 'sequence-mean', 'uniform', 'early', 'late'] as const;
export type IpvrmWeightingName = (typeof IPVRM_WEIGHTINGS)[number];
