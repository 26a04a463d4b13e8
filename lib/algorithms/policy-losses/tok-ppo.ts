// Tok-PPO: PPO's clipped surrogate on the sampled tokens with the dual clip c for negative advantages (reference:
// token mean over the batch; paper: eq. 12, per-sequence 1/T). implemented-math.md §3d.
import { registerPolicyLoss } from './registry.js';

registerPolicyLoss({ name: 'tok-ppo', candidates: false, term: (out) => out.pgLoss });
