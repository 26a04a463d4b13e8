// Policy losses, one file each; importing this module registers them all.
export { registerPolicyLoss, getPolicyLoss, listPolicyLosses, type PolicyLoss } from './registry.js';
import './tok-ppo.js';
import './dist-ppo.js';
