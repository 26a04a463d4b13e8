// Dist-PPO: the clipped policy gradient over π_old's high-probability candidates (top-K with the sampled token forced
// in, P_min), each weighted by π_old, with the candidate advantages Â (paper eq. 11; implemented-math.md §3d).
import { registerPolicyLoss } from './registry.js';

registerPolicyLoss({ name: 'dist-ppo', candidates: true, term: (out) => out.topkPgLoss });
