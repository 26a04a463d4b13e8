// CPU benchmark of the fused objectives against the naive ATen composition (log_softmax → gather → cumsum …),
// side by side in one process: time (median of repeats) and peak extra memory (VmHWM above the baseline RSS,
// after resetting the high-water mark through /proc/self/clear_refs). Run: npm run bench:ops [-- --quick]
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { distrlCandidates, distrlLoss, ipvrmOffline } from '../lib/ops/objectives.js';
import { environmentReport } from '../lib/native/runtime.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const quick = process.argv.includes('--quick');
const repeats = quick ? 1 : 3;

function rssKiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** Runs `fn` once for its peak memory and `repeats` times for its median time. */
async function measure(fn: () => Promise<void>): Promise<{ ms: number; peakMiB: number }> {
  global.gc?.();
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
  const base = rssKiB('VmRSS');
  await fn();
  const peakMiB = (rssKiB('VmHWM') - base) / 1024;
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], peakMiB };
}

interface Problem {
  logits: Tensor;
  refLogits: Tensor;
  tokens: Tensor;
  mask: Tensor;
  labels: Tensor;
}

function problem(B: number, T: number, V: number): Problem {
  const logits = Tensor.randn([B, T, V], 1, { dtype: 'float32' }).keep();
  return {
    logits,
    refLogits: logits.add(Tensor.randn([B, T, V], 2, { dtype: 'float32' }).mul(0.1)).keep(),
    tokens: Tensor.rand([B, T], 3, { dtype: 'float64' }).mul(V).to('int64').keep(),
    mask: Tensor.ones([B, T]).keep(),
    labels: Tensor.rand([B], 4).gt(0.5).to('float32').keep(),
  };
}

const beta = 10;
const margin = 5;

async function ipvrmFused(p: Problem): Promise<void> {
  await tidy(async () => {
    const logits = p.logits.detach();
    logits.requiresGrad = true;
    const out = await ipvrmOffline({ ...p, logits, beta, margin });
    await out.loss.backwardAsync();
    logits.grad!.dispose();
  });
}

async function ipvrmNaive(p: Problem): Promise<void> {
  await tidy(async () => {
    const logits = p.logits.detach();
    logits.requiresGrad = true;
    const index = p.tokens.unsqueeze(-1);
    const logp = logits.logSoftmax(-1).gather(-1, index).squeeze(-1);
    const refLogp = p.refLogits.logSoftmax(-1).gather(-1, index).squeeze(-1);
    const V = logp.sub(refLogp).mul(p.mask).cumsum(1).mul(beta);
    const vbar = V.div(p.mask.cumsum(1).maximum(1));
    const y = p.labels.unsqueeze(1);
    const perToken = y.mul(vbar.sub(margin).logSigmoid()).add(y.neg().add(1).mul(vbar.add(margin).neg().logSigmoid())).neg();
    const loss = perToken.mul(p.mask).sum().div(p.mask.sum());
    await loss.backwardAsync();
    logits.grad!.dispose();
  });
}

async function distPpoFused(p: Problem): Promise<void> {
  await tidy(async () => {
    const c = await distrlCandidates({ oldLogits: p.refLogits, tokens: p.tokens, mask: p.mask });
    const newLogits = p.logits.detach();
    newLogits.requiresGrad = true;
    const [B, T] = p.tokens.shape;
    const out = await distrlLoss({
      ...c,
      newLogits,
      advantages: Tensor.randn([B, T], 5, { dtype: 'float32' }),
      scaledCandidateTd: Tensor.randn([B, T, 5], 6, { dtype: 'float32' }),
      mask: p.mask,
    });
    await out.loss.backwardAsync();
    newLogits.grad!.dispose();
  });
}

async function distPpoNaive(p: Problem): Promise<void> {
  await tidy(async () => {
    const [B, T] = p.tokens.shape;
    // Candidates: full log_softmax of π_old, top-5, sampled token forced into slot 0 (approximated by overwriting
    // slot 0, which costs the same), P_min mask.
    const oldLogp = p.refLogits.logSoftmax(-1);
    const [, top] = oldLogp.topk(5, -1);
    const index = Tensor.cat([p.tokens.unsqueeze(-1), top.slice(2, 0, 4)], 2);
    const oldTopk = oldLogp.gather(-1, index);
    const cand = oldTopk.exp().gt(0.1).to('float32').mul(p.mask.unsqueeze(2));
    const newLogits = p.logits.detach();
    newLogits.requiresGrad = true;
    const newTopk = newLogits.logSoftmax(-1).gather(-1, index);
    const A = Tensor.randn([B, T], 5, { dtype: 'float32' });
    const Ac = Tensor.randn([B, T, 5], 6, { dtype: 'float32' });
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
    newLogits.grad!.dispose();
  });
}

const shapes: [number, number][] = quick
  ? [[512, 32000]]
  : [
      [512, 32000],
      [512, 151936],
      [2048, 32000],
      [2048, 151936],
    ];

const rows: string[] = [];
const report = environmentReport();
console.log(`# ops benchmark: libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`);
console.log('| objective | N | V | fused ms | naive ms | speed-up | fused extra MiB | naive extra MiB | memory ratio |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [N, V] of shapes) {
  const T = 256;
  const p = problem(N / T, T, V);
  for (const [name, fused, naive] of [
    ['IPVRM fwd+bwd', ipvrmFused, ipvrmNaive],
    ['Dist-PPO fwd+bwd', distPpoFused, distPpoNaive],
  ] as const) {
    const f = await measure(() => fused(p));
    const n = await measure(() => naive(p));
    const row = `| ${name} | ${N} | ${V} | ${f.ms.toFixed(0)} | ${n.ms.toFixed(0)} | ${(n.ms / f.ms).toFixed(2)}x | ${f.peakMiB.toFixed(0)} | ${n.peakMiB.toFixed(0)} | ${(f.peakMiB / n.peakMiB).toFixed(2)} |`;
    rows.push(row);
    console.log(row);
  }
  for (const t of Object.values(p)) t.dispose();
}
