// The GPU benchmark of benchmarks/gpu/run.sh, side by side in one run on one GPU, printed as one markdown table:
//  - the HBM floor: a device-to-device copy of one bf16 [N, V] (2 passes), so that pass counts turn into times;
//  - IPVRM and Dist-PPO fused forward + backward at N = 16,384, V = 151,936, bf16, against that floor (the pass counts
//    of ../shared/reference/performance-anchors.md §1.3) and against the naive ATen composition (OOM reported), with
//    their extra memory (peak allocated above the inputs);
//  - the fused LM head (headLogprobs / headLogprobsAndEntropy, with and without a LoRA term) against the present path
//    and the head's GEMMs alone;
//  - a Qwen3-0.6B-shaped model with random weights: a bf16 mixed-precision training step's tokens/s and KV-cache
//    sampling tokens/s;
//  - data-parallel collectives on the device in a process group of one: a float32 all-reduce over NCCL (on the
//    device) and over Gloo (staged through host memory). One rank measures each path's own cost, not NCCL's bus
//    bandwidth, which needs two GPUs or more.
//
//   node .gpu/gpu-bench.mjs [--quick] [--out FILE]     (run.sh bundles this file; --quick: small shapes, a smoke run)
import { writeFileSync } from 'node:fs';
import { initProcessGroup, type DistributedBackend } from '../../lib/distributed/index.js';
import { AdamW, initModel, type CausalLM } from '../../lib/model/index.js';
import { environmentReport } from '../../lib/native/runtime.js';
import { distrlCandidates, distrlLoss, headLogprobs, headLogprobsAndEntropy, tokenEntropy, tokenLogprobs } from '../../lib/ops/objectives.js';
import { cudaEmptyCache, cudaMemory, cudaResetPeakMemory, cudaSynchronize, Tensor, tidy, type DeviceName } from '../../lib/tensor/index.js';
import { distPpoFused, distPpoNaive, ipvrmFused, ipvrmNaive, type Problem, type Variant } from '../objective-variants.js';

const quick = process.argv.includes('--quick');
const outFile = process.argv.find((a) => a.startsWith('--out='))?.slice(6);
const device: DeviceName = (process.env.PREFIX_RL_BENCH_DEVICE as DeviceName | undefined) ?? 'cuda';
const onGpu = device !== 'cpu';
const repeats = quick ? 1 : 3;
const [N, V, H] = quick ? [1024, 32_000, 256] : [16_384, 151_936, 1024];
const T = 256;
const GiB = 2 ** 30;

const sync = () => (onGpu ? cudaSynchronize(device) : Promise.resolve());
const allocated = () => (onGpu ? cudaMemory(device).allocatedBytes : 0);

interface Measured {
  ms?: number;
  extraGiB?: number;
  error?: string;
}

/**
 * Median time of `repeats` runs of `fn` after one warm-up (which measures the peak memory above what was allocated
 * before it), each on fresh logits from `setup` (made before the clock starts: in-place variants consume them).
 */
async function measure(setup: () => Tensor, fn: (logits: Tensor) => Promise<void>): Promise<Measured> {
  const times: number[] = [];
  let extraGiB = 0;
  try {
    for (let i = 0; i <= repeats; i++) {
      const logits = setup();
      logits.requiresGrad = true;
      await sync();
      if (onGpu) cudaResetPeakMemory(device);
      const base = allocated();
      const start = performance.now();
      await fn(logits);
      await sync();
      if (i === 0) extraGiB = onGpu ? (cudaMemory(device).peakAllocatedBytes - base) / GiB : NaN;
      else times.push(performance.now() - start);
      logits.dispose();
    }
  } catch (err) {
    const message = (err as Error).message;
    return { error: /out of memory/i.test(message) ? 'OOM' : message.split('\n')[0].slice(0, 80) };
  } finally {
    if (onGpu) cudaEmptyCache();
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], extraGiB };
}

/** LM-head-like bf16 logits [B, T, V]: random hidden states through a random head, made on the device (no [N, V] host array). */
function problem(): Problem {
  return tidy(() => {
    const head = Tensor.randn([V, H], 1).to(device).to('bfloat16');
    const hidden = Tensor.randn([N, H], 2).to(device).to('bfloat16');
    const scale = 2 / Math.sqrt(H);
    const logits = hidden
      .matmul(head.transpose(0, 1))
      .mul(scale)
      .reshape([N / T, T, V]);
    const refHidden = hidden.add(Tensor.randn([N, H], 3).to(device).to('bfloat16').mul(0.1));
    const refLogits = refHidden
      .matmul(head.transpose(0, 1))
      .mul(scale)
      .reshape([N / T, T, V]);
    return {
      logits: logits.keep(),
      refLogits: refLogits.keep(),
      tokens: Tensor.rand([N / T, T], 4, { dtype: 'float64' })
        .mul(V)
        .to('int64')
        .to(device)
        .keep(),
      mask: Tensor.ones([N / T, T], { device }).keep(),
      labels: Tensor.rand([N / T], 5)
        .gt(0.5)
        .to('float32')
        .to(device)
        .keep(),
    };
  });
}

/** Dist-PPO's policy update alone: the candidate set (from π_old, frozen over the PPO epochs) is computed once, outside. */
async function distPpoPolicyStep(p: Problem): Promise<Variant> {
  const candidates = await distrlCandidates({ oldLogits: p.refLogits, tokens: p.tokens, mask: p.mask });
  const advantages = Tensor.randn([N / T, T], 6, { device });
  const scaledCandidateTd = Tensor.randn([N / T, T, 5], 7, { device });
  return async (_, newLogits) => {
    await tidy(async () => {
      const out = await distrlLoss({ ...candidates, newLogits, inplaceBackward: true, advantages, scaledCandidateTd, mask: p.mask });
      await out.loss.backwardAsync();
    });
  };
}

const rows: string[] = [];
const cell = (m: Measured, format: (m: Required<Omit<Measured, 'error'>>) => string) =>
  m.error ? m.error : format(m as Required<Omit<Measured, 'error'>>);
const fmtMs = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1);

const report = environmentReport();
const gpu = report.runtime.cudaDevices[0];
const header =
  `# GPU benchmark: ${gpu ? `${gpu.name} (capability ${gpu.capability}, ${(gpu.totalMemoryBytes / GiB).toFixed(0)} GiB)` : device}, ` +
  `libtorch ${report.build.torchVersion}, fused kernels ${gpu?.fusedKernels ? 'yes' : 'no'}; N = ${N}, V = ${V}, bf16, median of ${repeats}`;
console.log(header);

const p = problem();
const fresh = () => p.logits.clone();
const bytes = N * V * 2;
const copy = await measure(fresh, async (x) => {
  x.clone().dispose();
});
const passMs = (copy.ms ?? NaN) / 2;
rows.push(
  `| copy of one bf16 [N, V] (read + write) | ${cell(copy, (m) => fmtMs(m.ms))} | 2 passes: ${((2 * bytes) / (copy.ms! / 1000) / 1e12).toFixed(2)} TB/s | | | |`,
);

const policyStep = await distPpoPolicyStep(p);
const variants: [string, Variant, Variant, number][] = [
  // name, fused, naive, the fused op's pass count (performance-anchors.md §1.3)
  ['IPVRM fwd+bwd (φ and ref logits, in-place grad)', ipvrmFused(true), ipvrmNaive, 4],
  ['Dist-PPO fwd+bwd (candidates from π_old, in-place grad)', distPpoFused(true), distPpoNaive, 4],
  ['Dist-PPO policy update (cached candidate set, in-place grad)', policyStep, distPpoNaive, 3],
];
for (const [name, fused, naive, passes] of variants) {
  const f = await measure(fresh, (logits) => fused(p, logits));
  const n = await measure(fresh, (logits) => naive(p, logits));
  const floor = passes * passMs;
  rows.push(
    `| ${name} | ${cell(f, (m) => fmtMs(m.ms))} | ${passes} passes = ${fmtMs(floor)} ms: ${cell(f, (m) => (m.ms / floor).toFixed(2))}× the floor | ` +
      `${cell(n, (m) => fmtMs(m.ms))} | ${f.ms && n.ms ? `${(n.ms / f.ms).toFixed(1)}×` : cell(n, () => '')} | ` +
      `${cell(f, (m) => m.extraGiB.toFixed(2))} / ${cell(n, (m) => m.extraGiB.toFixed(2))} GiB (one bf16 [N, V] = ${(bytes / GiB).toFixed(2)}) |`,
  );
}
for (const t of Object.values(p)) t.dispose();

// ---- the fused LM head (issue 14): from hidden states [N, H] and a head [V, H], fwd + bwd to hidden and weight ----
const headRows: string[] = [];
{
  const weight = tidy(() =>
    Tensor.randn([V, H], 11)
      .to(device)
      .mul(1 / Math.sqrt(H))
      .to('bfloat16')
      .keep(),
  );
  const hidden = tidy(() => Tensor.randn([N, H], 12).to(device).to('bfloat16').keep());
  const index = tidy(() => Tensor.rand([N, 5], 13, { dtype: 'float64' }).mul(V).to('int64').to(device).keep());
  const sampled = tidy(() => index.slice(1, 0, 1).contiguous().keep());
  // A rank-128 LoRA on the head (the paper's RL rank), its factors trained with W.
  const loraA = tidy(() =>
    Tensor.randn([128, H], 14)
      .to(device)
      .mul(1 / Math.sqrt(H))
      .to('bfloat16')
      .keep(),
  );
  const loraB = tidy(() => Tensor.randn([V, 128], 15).to(device).mul(0.01).to('bfloat16').keep());
  const loraTerm = (h: Tensor) => {
    const [a, b] = [loraA.detach(), loraB.detach()];
    a.requiresGrad = true;
    b.requiresGrad = true;
    return { hidden: h.matmul(a.transpose(0, 1)), weight: b };
  };
  const withWeight = async (fn: (h: Tensor, w: Tensor) => Promise<Tensor>, h: Tensor, frozen = false) =>
    tidy(async () => {
      const w = weight.detach();
      w.requiresGrad = !frozen;
      await (await fn(h, w)).sum().backwardAsync();
    });
  const logits = (h: Tensor, w: Tensor) => h.matmul(w.transpose(0, 1));
  // The floors: the head GEMMs a backward needs anyway, ∂z standing in for the logits: h·Wᵀ and ∂z·W, and ∂zᵀ·h
  // for a trained head's ∂W (a frozen head has none).
  const floor = (withWeightGradient: boolean) =>
    measure(
      () => hidden.clone(),
      async (h) =>
        tidy(async () => {
          const z = await h.detach().matmulAsync(weight.transpose(0, 1));
          (await z.matmulAsync(weight)).dispose();
          if (withWeightGradient) (await z.transpose(0, 1).matmulAsync(h.detach())).dispose();
        }),
    );
  const gemms = await floor(true);
  const frozenGemms = await floor(false);
  // The options: `aten` runs the variant with PREFIX_RL_HEAD_KERNELS=aten (the fused head's chunks reduced by ATen
  // ops instead of the CUDA kernels); `frozen` trains hidden only (a LoRA actor's head), measured against its floor.
  const ipvrmFused = (h: Tensor, w: Tensor) => headLogprobs(h, w, sampled);
  const variants: [string, (h: Tensor, w: Tensor) => Promise<Tensor>, { aten?: boolean; frozen?: boolean }?][] = [
    ['IPVRM fused head (headLogprobs, K = 1)', ipvrmFused],
    ['IPVRM fused head, chunks reduced by ATen ops (PREFIX_RL_HEAD_KERNELS=aten)', ipvrmFused, { aten: true }],
    ['IPVRM fused head, frozen head (backward from the expectations; vs the two GEMMs)', ipvrmFused, { frozen: true }],
    [
      'IPVRM present path, frozen head (vs the two GEMMs)',
      (h, w) => tokenLogprobs(logits(h, w), sampled, { inplaceBackward: true }),
      { frozen: true },
    ],
    ['IPVRM present path (linear → fused gather, in-place grad)', (h, w) => tokenLogprobs(logits(h, w), sampled, { inplaceBackward: true })],
    ['IPVRM fused head with a rank-128 LoRA term (∂A, ∂B too)', (h, w) => headLogprobs(h, w, sampled, { lora: loraTerm(h) })],
    [
      'IPVRM present path with the LoRA (h·Wᵀ + (h·Aᵀ)·Bᵀ → fused gather)',
      (h, w) => {
        const lora = loraTerm(h);
        return tokenLogprobs(logits(h, w).add(lora.hidden.matmul(lora.weight.transpose(0, 1))), sampled, { inplaceBackward: true });
      },
    ],
    [
      'DistRL fused head (headLogprobsAndEntropy, K = 5)',
      async (h, w) => {
        const { logprobs, entropy } = await headLogprobsAndEntropy(h, w, index);
        return logprobs.sum().add(entropy.detach().sum());
      },
    ],
    [
      'DistRL present path (linear → fused gather + entropy)',
      async (h, w) => {
        const z = logits(h, w);
        const entropy = await tokenEntropy(z.detach());
        return (await tokenLogprobs(z, index, { inplaceBackward: true })).sum().add(entropy.sum());
      },
    ],
  ];
  headRows.push(
    `| the three head GEMMs alone (h·Wᵀ, ∂z·W, ∂zᵀ·h) | ${cell(gemms, (m) => fmtMs(m.ms))} | 1.00× | ${cell(gemms, (m) => m.extraGiB.toFixed(2))} |`,
    `| the two head GEMMs of a frozen head alone (h·Wᵀ, ∂z·W) | ${cell(frozenGemms, (m) => fmtMs(m.ms))} | 1.00× | ${cell(frozenGemms, (m) => m.extraGiB.toFixed(2))} |`,
  );
  for (const [name, fn, { aten = false, frozen = false } = {}] of variants) {
    if (aten) process.env.PREFIX_RL_HEAD_KERNELS = 'aten';
    const m = await measure(
      () => hidden.clone(),
      (h) => withWeight(fn, h, frozen),
    ).finally(() => delete process.env.PREFIX_RL_HEAD_KERNELS);
    const floor = frozen ? frozenGemms : gemms;
    headRows.push(
      `| ${name} | ${cell(m, (x) => fmtMs(x.ms))} | ${m.ms && floor.ms ? `${(m.ms / floor.ms).toFixed(2)}×` : ''} | ${cell(m, (x) => x.extraGiB.toFixed(2))} |`,
    );
  }
  for (const t of [weight, hidden, index, sampled, loraA, loraB]) t.dispose();
}

// ---- a Qwen3-0.6B-shaped model, random weights ----
const QWEN3_0_6B = {
  model_type: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  vocab_size: quick ? 32_000 : 151_936,
  hidden_size: quick ? 256 : 1024,
  intermediate_size: quick ? 768 : 3072,
  num_hidden_layers: quick ? 2 : 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: quick ? 16 : 128,
  max_position_embeddings: 40_960,
  rms_norm_eps: 1e-6,
  rope_theta: 1_000_000,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: 0,
};
const [trainBatch, trainSeq, genBatch, promptLen, newTokens] = quick ? [2, 128, 4, 8, 16] : [8, 1024, 32, 16, 128];
const randomIds = (rows: number, length: number, seed: number) =>
  tidy(() =>
    Tensor.rand([rows, length], seed, { dtype: 'float64' })
      .mul(QWEN3_0_6B.vocab_size - 3)
      .add(3)
      .to('int64')
      .keep(),
  );

async function timed(fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    await sync();
    const start = performance.now();
    await fn();
    await sync();
    times.push((performance.now() - start) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const modelRows: string[] = [];
let model: CausalLM | undefined;
try {
  model = await initModel(QWEN3_0_6B, { device, dtype: 'bfloat16', masterWeights: true, seed: 0 });
  const m = model;
  const parameters = m.parameters();
  for (const parameter of parameters.values()) parameter.requiresGrad = true;
  const optimizer = new AdamW(parameters, { lr: 1e-5 });
  const inputIds = randomIds(trainBatch, trainSeq, 8);
  const trainS = await timed(() =>
    tidy(async () => {
      const logprobs = await m.tokenLogprobs(inputIds, undefined, { checkpoint: true });
      await logprobs.mean().neg().backwardAsync();
      await optimizer.step();
      await optimizer.zeroGrad();
    }),
  );
  for (const parameter of parameters.values()) parameter.requiresGrad = false;
  await optimizer.zeroGrad();
  modelRows.push(
    `| training step: fwd + token log-probs + bwd (checkpointed) + AdamW, bf16 compute over float32 master weights | ${trainBatch} × ${trainSeq} | ${((trainBatch * trainSeq) / trainS).toFixed(0)} |`,
  );
  const prompts = tidy(() => randomIds(genBatch, promptLen, 9).toNested() as number[][]);
  const sampleS = await timed(async () => {
    const out = await m.generate(prompts, { maxNewTokens: newTokens, temperature: 1, eosTokenIds: [], seed: 10 });
    if (out.some((g) => g.tokens.length !== newTokens)) throw new Error('a row stopped early');
  });
  modelRows.push(
    `| sampling with the KV cache (cached bf16 casts of the weights) | ${genBatch} prompts × ${newTokens} new tokens | ${((genBatch * newTokens) / sampleS).toFixed(0)} |`,
  );
  inputIds.dispose();
  for (const parameter of parameters.values()) parameter.dispose();
} catch (err) {
  modelRows.push(`| Qwen3-0.6B-shaped model | failed: ${(err as Error).message.split('\n')[0]} | |`);
} finally {
  model?.dispose();
}

// ---- data-parallel collectives on the device (issue 16): a process group of one ----
const distRows: string[] = [];
{
  const elements = quick ? 16 << 20 : 256 << 20; // float32: 64 MiB or 1 GiB, a few gradient buckets' worth
  const backends: DistributedBackend[] = ['gloo', ...(environmentReport().build.distributedBackends.includes('nccl') ? (['nccl'] as const) : [])];
  for (const [i, backend] of backends.entries()) {
    try {
      const env = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 29_400 + i };
      const group = await initProcessGroup(env, { backend, timeoutSeconds: 120 });
      const tensor = tidy(() => Tensor.ones([elements]).to(device).keep());
      const seconds = await timed(() => group.allReduce([tensor]));
      const ok = tidy(() =>
        tensor
          .to('cpu')
          .slice(0, 0, 4)
          .toNumbers()
          .every((x) => x === 1),
      );
      const where = backend === 'nccl' && onGpu ? 'on the device' : 'staged through host memory';
      distRows.push(
        `| allReduce, float32 ${((elements * 4) / GiB).toFixed(2)} GiB on ${device}, ${backend} (${where}) | ${fmtMs(seconds * 1000)} | ${((elements * 4) / GiB / seconds).toFixed(1)} | ${ok ? 'yes' : 'NO'} |`,
      );
      tensor.dispose();
      await group.close();
    } catch (err) {
      distRows.push(`| allReduce over ${backend} | failed: ${(err as Error).message.split('\n')[0].slice(0, 120)} | | |`);
    }
  }
}

const table = [
  header,
  '',
  '| row | fused ms | against the HBM floor | naive ms | speed-up | extra memory fused / naive |',
  '|---|---|---|---|---|---|',
  ...rows,
  '',
  `| fused LM head, N = ${N}, H = ${H}, V = ${V}, bf16, fwd + bwd to hidden and weight | ms | vs the head GEMMs | extra GiB |`,
  '|---|---|---|---|',
  ...headRows,
  '',
  `| Qwen3-0.6B-shaped model (random weights, ${QWEN3_0_6B.num_hidden_layers} layers, V = ${QWEN3_0_6B.vocab_size}) | shape | tokens/s |`,
  '|---|---|---|',
  ...modelRows,
  '',
  "| collective (a process group of one: the path's own cost, not bus bandwidth) | ms | GiB/s | sum = input |",
  '|---|---|---|---|',
  ...distRows,
].join('\n');
console.log(table.split('\n').slice(1).join('\n'));
if (outFile) writeFileSync(outFile, table + '\n');
