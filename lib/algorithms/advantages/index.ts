// Advantage estimators: the math of each family as plain functions, and the registry of estimators (one input type,
// looked up by name). Importing this module registers every estimator.
export { registerAdvantage, getAdvantage, listAdvantages, type AdvantageEstimator, type AdvantageInput, type AdvantageOutput } from './registry.js';
export { grpo, grpoVerl, drGrpo, type GrpoInput } from './grpo.js';
export { gae, type GaeInput } from './gae.js';
export { distrlAdvantages, type DistrlAdvantageInput, type DistrlAdvantages } from './distrl.js';
export { prime, primeOriginal, primeBatchNorm, maskedRloo, type PrimeInput, type PrimeAdvantages } from './prime.js';
import './rloo.js';
