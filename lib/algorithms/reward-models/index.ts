// Implicit reward models trained online, one file each; importing this module registers them all.
export {
  registerRewardModel,
  getRewardModel,
  listRewardModels,
  implicitScore,
  type RewardModel,
  type RewardModelBatch,
  type RewardModelSettings,
  type RewardScoreInput,
  type RewardScores,
} from './registry.js';
export { outcomePairCount } from './dpo-rm.js';
import './ipvrm.js';
import './implicit-prm.js';
