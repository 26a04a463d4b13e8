// The policy-loss registry (as verl's register_policy_loss): the actor's loss is Σ coef × loss over the losses a
// config names (actor.policyLosses). The fused native pass `distrlLoss` computes every term at once from π_θ's
// logits — Tok-PPO on the sampled tokens and Dist-PPO on π_old's candidates — so an entry names its term of that pass
// and whether it needs the candidate set. A new loss is one file plus one import line in index.ts.
import type { DistrlLossOutputs } from '../../ops/objectives.js';
import type { Tensor } from '../../tensor/index.js';
import { Registry } from '../../util/registry.js';

export interface PolicyLoss {
  readonly name: string;
  /** Whether it trains on π_old's top-K candidate set (else the loop builds a candidate set of the sampled token only). */
  readonly candidates: boolean;
  /** Its scalar loss (with its graph) from the fused pass's outputs. */
  term(out: DistrlLossOutputs): Tensor;
}

const losses = new Registry<PolicyLoss>('policy loss');

export const registerPolicyLoss = (loss: PolicyLoss): PolicyLoss => losses.register(loss);
export const getPolicyLoss = (name: string): PolicyLoss => losses.get(name);
export const listPolicyLosses = (): string[] => losses.names();
