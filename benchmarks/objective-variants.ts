// The objective variants the benchmarks time, on any device: the fused IPVRM and Dist-PPO ops (optionally with the
// in-place gradient) and the naive ATen composition they replace (log_softmax → gather → cumsum …, autograd).
// benchmarks/ops.ts runs them on the CPU, benchmarks/gpu/bench.ts on a GPU.
import { distrlCandidates, distrlLoss, ipvrmOffline } from '../lib/ops/objectives.js';
import { Tensor, tidy, type DeviceName } from '../lib/tensor/index.js';

export interface Problem {
  logits: Tensor;
  refLogits: Tensor;
  tokens: Tensor;
  mask: Tensor;
  labels: Tensor;
}

export function problem(B: number, T: number, V: number, dtype: 'float32' | 'bfloat16' = 'float32'): Problem {
  return tidy(() => {
    const logits = Tensor.randn([B, T, V], 1, { dtype: 'float32' });
    return {
      logits: logits.to(dtype),
      refLogits: logits.add(Tensor.randn([B, T, V], 2, { dtype: 'float32' }).mul(0.1)).to(dtype),
      tokens: Tensor.rand([B, T], 3, { dtype: 'float64' }).mul(V).to('int64'),
      mask: Tensor.ones([B, T]),
      labels: Tensor.rand([B], 4).gt(0.5).to('float32'),
    };
  });
}

const beta = 10;
const margin = 5;

export type Variant = (p: Problem, logits: Tensor) => Promise<void>;

export const ipvrmFused =
  (inplaceBackward: boolean): Variant =>
  async (p, logits) => {
    await tidy(async () => {
      const out = await ipvrmOffline({ ...p, logits, beta, margin, inplaceBackward });
      await out.loss.backwardAsync();
    });
  };

export const ipvrmNaive: Variant = async (p, logits) => {
  await tidy(async () => {
    const index = p.tokens.unsqueeze(-1);
    const logp = logits.logSoftmax(-1).gather(-1, index).squeeze(-1);
    const refLogp = p.refLogits.logSoftmax(-1).gather(-1, index).squeeze(-1);
    const V = logp.sub(refLogp).mul(p.mask).cumsum(1).mul(beta);
    const vbar = V.div(p.mask.cumsum(1).maximum(1));
    const y = p.labels.unsqueeze(1);
    const perToken = y
      .mul(vbar.sub(margin).logSigmoid())
      .add(y.neg().add(1).mul(vbar.add(margin).neg().logSigmoid()))
      .neg();
    const loss = perToken.mul(p.mask).sum().div(p.mask.sum());
    await loss.backwardAsync();
  });
};

export const distPpoFused =
  (inplaceBackward: boolean): Variant =>
  async (p, newLogits) => {
    await tidy(async () => {
      const c = await distrlCandidates({ oldLogits: p.refLogits, tokens: p.tokens, mask: p.mask });
      const [B, T] = p.tokens.shape;
      const out = await distrlLoss({
        ...c,
        newLogits,
        inplaceBackward,
        advantages: Tensor.randn([B, T], 5, { dtype: 'float32', device: p.mask.device as DeviceName }),
        scaledCandidateTd: Tensor.randn([B, T, 5], 6, { dtype: 'float32', device: p.mask.device as DeviceName }),
        mask: p.mask,
      });
      await out.loss.backwardAsync();
    });
  };

export const distPpoNaive: Variant = async (p, newLogits) => {
  await tidy(async () => {
    const [B, T] = p.tokens.shape;
    // Candidates: full log_softmax of π_old, top-5, sampled token forced into slot 0 (approximated by overwriting
    // slot 0, which costs the same), P_min mask.
    const oldLogp = p.refLogits.logSoftmax(-1);
    const [, top] = oldLogp.topk(5, -1);
    const index = Tensor.cat([p.tokens.unsqueeze(-1), top.slice(2, 0, 4)], 2);
    const oldTopk = oldLogp.gather(-1, index);
    const cand = oldTopk.exp().gt(0.1).to('float32').mul(p.mask.unsqueeze(2));
    const newTopk = newLogits.logSoftmax(-1).gather(-1, index);
    const A = Tensor.randn([B, T], 5, { dtype: 'float32', device: p.mask.device as DeviceName });
    const Ac = Tensor.randn([B, T, 5], 6, { dtype: 'float32', device: p.mask.device as DeviceName });
    const clip = (ratio: Tensor, adv: Tensor, lo: number, hi: number) => {
      const l1 = adv.neg().mul(ratio);
      const l2 = adv.neg().mul(ratio.maximum(1 - lo).minimum(1 + hi));
      const c1 = l1.maximum(l2);
      return Tensor.where(adv.lt(0), adv.mul(-3).minimum(c1), c1);
    };
    const tok = clip(newTopk.select(2, 0).sub(oldTopk.select(2, 0)).exp(), A, 0.2, 0.28);
    const pg = tok.mul(p.mask).sum().div(p.mask.sum().add(1e-8));
    const w = oldTopk.exp().mul(cand);
    const dist = clip(newTopk.sub(oldTopk).exp(), Ac, 0.2, 0.2).mul(w).sum().div(w.sum());
    await pg.add(dist.mul(0.1)).backwardAsync();
  });
};
