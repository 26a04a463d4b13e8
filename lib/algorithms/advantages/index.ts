// Advantage estimators, one file each; importing this module registers them all.
export { registerAdvantage, getAdvantage, listAdvantages, type AdvantageFn } from './registry.js';
export { grpo, grpoVerl, drGrpo, type GrpoInput } from './grpo.js';
export { gae, type GaeInput } from './gae.js';
export { distrlAdvantages, type DistrlAdvantageInput, type DistrlAdvantages } from './distrl.js';
export { prime, primeOriginal, primeBatchNorm, maskedRloo, type PrimeInput, type PrimeAdvantages } from './prime.js';
