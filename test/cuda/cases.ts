// The CUDA path against the CPU path: every fused objective (float32 and bf16 logits, V up to 151,936, masked rows,
// a leading −inf, candidate sets with ties), the fused LM head from hidden states (with a LoRA term too), the
// decoder's forward and backward, three DistRL steps, and the data-parallel collectives of device tensors. Each case builds its inputs on the CPU, runs the same call on both devices, and
// compares.
//
// The cases run under jest where CUDA is present (test/cuda.test.ts; skipped visibly elsewhere) and, on a GPU
// machine without jest, from one bundled file under node's own test runner (benchmarks/gpu/run.sh). Setting
// PREFIX_RL_PARITY_DEVICE=cpu runs them CPU against CPU: how the harness and the bundle are checked without a GPU.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { resolveRlConfig } from '../../lib/config/rl.js';
import { initProcessGroup, type DistributedBackend } from '../../lib/distributed/index.js';
import { loadModel, padBatch, type CausalLM } from '../../lib/model/index.js';
import { environmentReport } from '../../lib/native/runtime.js';
import { runObjective, tokenEntropy, tokenLogprobs } from '../../lib/ops/objectives.js';
import { makeRlRecords } from '../../lib/task/index.js';
import { Tensor, tidy, type DeviceName, type DType } from '../../lib/tensor/index.js';
import { loadTokenizer } from '../../lib/tokenizer/index.js';
import { trainRl, type RlStep } from '../../lib/train/rl.js';
import { Rng } from '../../lib/util/rng.js';
import { worstDifference } from '../helpers/compare.js';
import { onEachHeadPath, withNativeEnv } from '../helpers/native-env.js';

export interface ParityCase {
  name: string;
  run: () => Promise<void>;
}

/** The device compared against the CPU. */
export const PARITY_DEVICE = (process.env.PREFIX_RL_PARITY_DEVICE ?? 'cuda') as DeviceName;

/** Why the cases cannot run here, or undefined when they can. */
export function paritySkipReason(): string | undefined {
  if (PARITY_DEVICE === 'cpu') return undefined;
  const { runtime } = environmentReport();
  return runtime.cudaAvailable ? undefined : 'no CUDA device (this libtorch is CPU-only or no GPU is visible)';
}

const QWEN_VOCAB = 151_936;
const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');

const values = (t: Tensor) =>
  tidy(() =>
    t
      .to('cpu')
      .to(t.dtype === 'int64' || t.dtype === 'bool' ? t.dtype : 'float64')
      .toNumbers(),
  );

function assertClose(what: string, device: Tensor, cpu: Tensor, tolerance: number): void {
  assert.deepEqual(device.shape, cpu.shape, `${what}: shapes differ`);
  const error = worstDifference(values(device), values(cpu));
  assert.ok(error <= tolerance, `${what}: ${PARITY_DEVICE} differs from cpu by ${error.toExponential(2)} (tolerance ${tolerance})`);
}

/** Random logits [B, T, V] in `dtype`, the same on every run. */
function logits(shape: number[], seed: number, dtype: DType): Tensor {
  return tidy(() => Tensor.randn(shape, seed).mul(3).to(dtype).keep());
}

/** Random token ids [...shape] below `vocab`. */
function ids(shape: number[], vocab: number, seed: number): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(
    BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rng.next() * vocab))),
    shape,
  );
}

/** A right-padded response mask [B, T]: row b holds T − 2b tokens (at least one). */
function mask(B: number, T: number): Tensor {
  const out = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < Math.max(1, T - 2 * b); t++) out[b * T + t] = 1;
  return Tensor.from(out, [B, T]);
}

type Inputs = Record<string, Tensor | number | boolean | string>;

/** `inputs` with every tensor on `device`; the keys in `leaves` become leaves that require grad. */
function placed(inputs: Inputs, device: DeviceName, leaves: readonly string[]): Inputs {
  const out: Inputs = {};
  for (const [key, value] of Object.entries(inputs)) {
    if (!(value instanceof Tensor)) {
      out[key] = value;
      continue;
    }
    const moved = value.to(device).detach();
    if (leaves.includes(key)) moved.requiresGrad = true;
    out[key] = moved;
  }
  return out;
}

/**
 * Runs objective `name` on the CPU and on the parity device from the same inputs and compares every output; with
 * `loss`, backpropagates it on both and compares the gradients of the `leaves` too.
 */
async function objectiveParity(name: string, inputs: Inputs, options: { leaves?: string[]; loss?: string; tolerance: number }): Promise<void> {
  const leaves = options.leaves ?? [];
  await tidy(async () => {
    const results = [];
    for (const device of ['cpu', PARITY_DEVICE] as DeviceName[]) {
      const on = placed(inputs, device, leaves);
      const out = await runObjective<Record<string, Tensor | number>>(name, on);
      if (options.loss) await (out[options.loss] as Tensor).backwardAsync();
      results.push({ on, out });
    }
    const [cpu, device] = results;
    for (const [key, value] of Object.entries(cpu.out)) {
      const other = device.out[key];
      if (value instanceof Tensor) assertClose(`${name}.${key}`, other as Tensor, value, options.tolerance);
      else assert.ok(worstDifference([other as number], [value]) <= options.tolerance, `${name}.${key}: ${other} vs ${value}`);
    }
    for (const key of leaves) {
      const [g, gCpu] = [(device.on[key] as Tensor).grad, (cpu.on[key] as Tensor).grad];
      assert.ok(g && gCpu, `${name}: no gradient for ${key}`);
      assertClose(`${name} ∂/∂${key}`, g, gCpu, options.tolerance);
    }
  });
}

// bf16 logits give both devices the same inputs; they differ by float32 summation order (≈1e-6 relative) and by
// one bf16 rounding of a gradient (2^-8 relative).
const TOLERANCE: Record<string, number> = { float32: 1e-4, bfloat16: 8e-3 };

function logRatioInputs(B: number, T: number, V: number, dtype: DType, seed: number): Inputs {
  return { logits: logits([B, T, V], seed, dtype), refLogits: logits([B, T, V], seed + 1, dtype), tokens: ids([B, T], V, seed), mask: mask(B, T) };
}

const objectiveCases: ParityCase[] = (['float32', 'bfloat16'] as DType[]).flatMap((dtype) => {
  const tolerance = TOLERANCE[dtype];
  const B = 4;
  const T = 6;
  const V = QWEN_VOCAB;
  const acc = () => Tensor.from(Float32Array.from([1, 0, 1, 1]), [B]);
  const cases: [string, () => Inputs, { leaves?: string[]; loss?: string }][] = [
    ['prefix_values', () => ({ ...logRatioInputs(B, T, V, dtype, 1), beta: 0.5 }), {}],
    ['ipvrm_offline', () => ({ ...logRatioInputs(B, T, V, dtype, 2), labels: acc(), beta: 10, margin: 0.5 }), { leaves: ['logits'], loss: 'loss' }],
    ['ipvrm_online', () => ({ ...logRatioInputs(B, T, V, dtype, 3), acc: acc(), groupSize: 4 }), { leaves: ['logits'], loss: 'loss' }],
    ['implicit_prm_ce', () => ({ ...logRatioInputs(B, T, V, dtype, 4), labels: acc() }), { leaves: ['logits'], loss: 'loss' }],
    ['implicit_prm_online', () => ({ ...logRatioInputs(B, T, V, dtype, 5), acc: acc(), groupSize: 4 }), { leaves: ['logits'], loss: 'loss' }],
    ['dpo_rm', () => logRatioInputs(B, T, V, dtype, 6), { leaves: ['logits'], loss: 'loss' }],
    ['dpo_online', () => ({ ...logRatioInputs(B, T, V, dtype, 7), acc: acc(), groupSize: 4 }), { leaves: ['logits'], loss: 'loss' }],
    ['distrl_candidates', () => ({ oldLogits: logits([B, T, V], 8, dtype), tokens: ids([B, T], V, 8), mask: mask(B, T), k: 5, minP: 0.001 }), {}],
  ];
  return [
    ...cases.map(([name, inputs, options]) => ({
      name: `${name} (${dtype} logits, V = ${V}, masked rows)`,
      run: () => tidy(() => objectiveParity(name, inputs(), { ...options, tolerance })),
    })),
    {
      name: `distrl_td and distrl_loss on a candidate set (${dtype}, V = ${V})`,
      run: () =>
        tidy(async () => {
          const tokens = ids([B, T], V, 9);
          const m = mask(B, T);
          const old = logits([B, T, V], 9, dtype);
          // The candidate set comes from the CPU so that both devices score the same candidates.
          const set = await runObjective<Record<string, Tensor>>('distrl_candidates', { oldLogits: old, tokens, mask: m, k: 5, minP: 0.001 });
          const common = { candidateIndices: set.candidateIndices, oldTopkLogprobs: set.oldTopkLogprobs, mask: m };
          await objectiveParity('distrl_td', { ...common, rmLogits: logits([B, T, V], 10, dtype), beta: 10 }, { tolerance });
          await objectiveParity(
            'distrl_loss',
            {
              ...common,
              newLogits: logits([B, T, V], 11, dtype),
              oldLogProb: set.oldLogProb,
              candidateMask: set.candidateMask,
              advantages: Tensor.randn([B, T], 12),
              scaledCandidateTd: Tensor.randn([B, T, 5], 13),
              alpha: 0.1,
            },
            { leaves: ['newLogits'], loss: 'loss', tolerance },
          );
        }),
    },
    {
      name: `token log-probs and entropy (${dtype}, V = ${V}, temperature 0.7, rows with no gradient)`,
      run: () =>
        tidy(async () => {
          const x = logits([8, V], 14, dtype);
          const index = ids([8, 3], V, 14);
          // Rows 2 and 5 get no gradient: the backward writes exact zeros there without reading the logits.
          const weights = Tensor.from(
            Float32Array.from({ length: 24 }, (_, i) => ([2, 5].includes(Math.floor(i / 3)) ? 0 : 1 + (i % 3))),
            [8, 3],
          );
          const results = [];
          for (const device of ['cpu', PARITY_DEVICE] as DeviceName[]) {
            const leaf = x.to(device).detach();
            leaf.requiresGrad = true;
            const logp = await tokenLogprobs(leaf, index.to(device), { temperature: 0.7 });
            await logp.mul(weights.to(device)).sum().backwardAsync();
            results.push({ logp, grad: leaf.grad!, entropy: await tokenEntropy(x.to(device), { temperature: 0.7 }) });
          }
          assertClose('log-probs', results[1].logp, results[0].logp, tolerance);
          assertClose('∂/∂logits', results[1].grad, results[0].grad, tolerance);
          assertClose('entropy', results[1].entropy, results[0].entropy, tolerance);
          assert.ok(
            values(results[1].grad.select(0, 2)).every((g) => g === 0),
            'a row with no gradient must be exactly zero',
          );
        }),
    },
  ];
});

// The fused LM head from hidden states [N, H] and a head [V, H]: its GEMMs differ between cuBLAS and the CPU's by
// summation order, which bf16 logits round to ≈2^-8 of their size.
const HEAD_TOLERANCE: Record<string, number> = { float32: 1e-4, bfloat16: 3e-2 };
const headCases: ParityCase[] = (['float32', 'bfloat16'] as DType[]).flatMap((dtype) => {
  const [N, H, V] = [24, 64, QWEN_VOCAB];
  const tolerance = HEAD_TOLERANCE[dtype];
  const hidden = () => tidy(() => Tensor.randn([N, H], 20).to(dtype).keep());
  const weight = () =>
    tidy(() =>
      Tensor.randn([V, H], 21)
        .mul(1 / Math.sqrt(H))
        .to(dtype)
        .keep(),
    );
  const cases: ParityCase[] = [
    {
      name: `fused head log-probs + entropy, values and ∂hidden, ∂W (${dtype}, V = ${V}, chunk 4096, temperature 0.8)`,
      run: () =>
        tidy(async () => {
          const [h, w, index] = [hidden(), weight(), ids([N, 5], V, 22)];
          const results = [];
          for (const device of ['cpu', PARITY_DEVICE] as DeviceName[]) {
            const on = placed({ hidden: h, weight: w, index, temperature: 0.8, entropy: true }, device, ['hidden', 'weight']);
            const out = await runObjective<{ logprobs: Tensor; entropy: Tensor }>('head_logprobs', on);
            await out.logprobs.sum().add(out.entropy.mul(0.5).sum()).backwardAsync();
            results.push({ out, hidden: (on.hidden as Tensor).grad!, weight: (on.weight as Tensor).grad! });
          }
          const [cpu, device] = results;
          assertClose('log-probs', device.out.logprobs, cpu.out.logprobs, tolerance);
          assertClose('entropy', device.out.entropy, cpu.out.entropy, tolerance);
          assertClose('∂/∂hidden', device.hidden, cpu.hidden, tolerance);
          assertClose('∂/∂weight', device.weight, cpu.weight, tolerance);
        }),
    },
    {
      // A LoRA actor's head: W and B frozen, so the forward accumulates Σ_v p_v·W_v (and ·B_v) and the backward
      // runs no vocabulary GEMM (the chunk_softmax kernel, or ATen ops).
      name: `fused head, frozen (W and B not trained): ∂hidden and ∂loraHidden from the forward's expectations, both device paths (${dtype}, V = ${V})`,
      run: () =>
        tidy(async () => {
          const loraHidden = tidy(() => Tensor.randn([N, 8], 29).to(dtype).keep());
          const loraWeight = tidy(() => Tensor.randn([V, 8], 30).mul(0.1).to(dtype).keep());
          const inputs = { hidden: hidden(), weight: weight(), loraHidden, loraWeight, index: ids([N, 3], V, 31), temperature: 0.9, chunkSize: 4099 };
          const leaves = ['hidden', 'loraHidden'];
          const pass = async (device: DeviceName) => {
            const on = placed(inputs, device, leaves);
            const out = await runObjective<{ logprobs: Tensor }>('head_logprobs', on);
            await out.logprobs.sum().backwardAsync();
            return { logprobs: out.logprobs, grads: leaves.map((key) => (on[key] as Tensor).grad!) };
          };
          // Against the CPU's recompute: an error both expectations paths shared would show.
          const cpu = await withNativeEnv({ PREFIX_RL_HEAD_RECOMPUTE: '1' }, () => pass('cpu'));
          await onEachHeadPath(async (path) => {
            const device = await pass(PARITY_DEVICE);
            assertClose(`${path}: log-probs`, device.logprobs, cpu.logprobs, tolerance);
            leaves.forEach((key, i) => assertClose(`${path}: ∂/∂${key}`, device.grads[i], cpu.grads[i], tolerance));
          });
        }),
    },
    {
      name: `fused head with a rank-8 LoRA term, values and ∂hidden, ∂W, ∂loraHidden, ∂loraWeight (${dtype}, V = ${V})`,
      run: () =>
        tidy(async () => {
          const loraHidden = tidy(() => Tensor.randn([N, 8], 24).to(dtype).keep());
          const loraWeight = tidy(() => Tensor.randn([V, 8], 25).mul(0.1).to(dtype).keep());
          const inputs = { hidden: hidden(), weight: weight(), loraHidden, loraWeight, index: ids([N, 3], V, 26) };
          const leaves = ['hidden', 'weight', 'loraHidden', 'loraWeight'];
          const results = [];
          for (const device of ['cpu', PARITY_DEVICE] as DeviceName[]) {
            const on = placed(inputs, device, leaves);
            const out = await runObjective<{ logprobs: Tensor }>('head_logprobs', on);
            await out.logprobs.sum().backwardAsync();
            results.push({ logprobs: out.logprobs, grads: leaves.map((key) => (on[key] as Tensor).grad!) });
          }
          const [cpu, device] = results;
          assertClose('log-probs', device.logprobs, cpu.logprobs, tolerance);
          leaves.forEach((key, i) => assertClose(`∂/∂${key}`, device.grads[i], cpu.grads[i], tolerance));
        }),
    },
    {
      name: `fused head on both device paths (CUDA kernels, ATen chunks): masked rows, an entropy gradient, chunk 4099 (rows start unaligned) (${dtype})`,
      run: () =>
        tidy(async () => {
          const [h, w, index] = [hidden(), weight(), ids([N, 4], V, 27)];
          const masked = (n: number) => n % 3 === 1;
          const rowMask = Tensor.from(
            Float32Array.from({ length: N }, (_, n) => (masked(n) ? 0 : 1)),
            [N],
          );
          const pass = async (device: DeviceName) => {
            const on = placed({ hidden: h, weight: w, index, temperature: 1.3, entropy: true, chunkSize: 4099 }, device, ['hidden', 'weight']);
            const out = await runObjective<{ logprobs: Tensor; entropy: Tensor }>('head_logprobs', on);
            const m = rowMask.to(device);
            await out.logprobs.mul(m.unsqueeze(1)).sum().add(out.entropy.mul(m).mul(-0.3).sum()).backwardAsync();
            return { out, hidden: (on.hidden as Tensor).grad!, weight: (on.weight as Tensor).grad! };
          };
          const cpu = await pass('cpu');
          await onEachHeadPath(async (path) => {
            const device = await pass(PARITY_DEVICE);
            assertClose(`${path}: log-probs`, device.out.logprobs, cpu.out.logprobs, tolerance);
            assertClose(`${path}: entropy`, device.out.entropy, cpu.out.entropy, tolerance);
            assertClose(`${path}: ∂/∂hidden`, device.hidden, cpu.hidden, tolerance);
            assertClose(`${path}: ∂/∂weight`, device.weight, cpu.weight, tolerance);
            const rows = values(device.hidden);
            for (let n = 0; n < N; n++) {
              if (masked(n))
                assert.ok(
                  rows.slice(n * H, (n + 1) * H).every((g) => g === 0),
                  `${path}: masked row ${n} must get exactly zero`,
                );
            }
          });
        }),
    },
  ];
  if (dtype === 'float32') {
    // Candidate ids compare exactly only where both devices round the logits alike: float32.
    cases.push({
      name: `distrl_candidates from hidden states through the fused head (${dtype}, V = ${V})`,
      run: () =>
        tidy(() =>
          objectiveParity(
            'distrl_candidates',
            { oldHidden: hidden().reshape([4, 6, H]), headWeight: weight(), tokens: ids([4, 6], V, 23), mask: mask(4, 6), k: 5, minP: 0.001 },
            { tolerance },
          ),
        ),
    });
    // K = 20 is beyond the CUDA top-K kernel's 16: the chunks' top-K then comes from ATen's sort.
    cases.push({
      name: `distrl_candidates through the fused head, K = 20 and chunk 4099 (${dtype}, V = ${V})`,
      run: () =>
        tidy(() =>
          objectiveParity(
            'distrl_candidates',
            {
              oldHidden: hidden().reshape([4, 6, H]),
              headWeight: weight(),
              chunkSize: 4099,
              tokens: ids([4, 6], V, 28),
              mask: mask(4, 6),
              k: 20,
              minP: 1e-6,
            },
            { tolerance },
          ),
        ),
    });
  }
  return cases;
});

const edgeCases: ParityCase[] = [
  {
    name: 'a row whose first logits are −inf (masked vocabulary) has a finite logsumexp',
    run: () =>
      tidy(async () => {
        const V = 4099; // odd: rows start unaligned
        const raw = Float32Array.from({ length: 4 * V }, (_, i) => (i % V < 1500 ? -Infinity : Math.sin(i)));
        const x = Tensor.from(raw, [4, V]);
        const index = Tensor.from(BigInt64Array.from([1600n, 2000n, 3000n, 4098n]), [4, 1]);
        for (const dtype of ['float32', 'bfloat16'] as DType[]) {
          const cpu = await tokenLogprobs(x.to(dtype), index);
          const device = await tokenLogprobs(x.to(dtype).to(PARITY_DEVICE), index.to(PARITY_DEVICE));
          assert.ok(values(device).every(Number.isFinite), `${dtype}: non-finite log-probs on ${PARITY_DEVICE}`);
          assertClose(`${dtype} log-probs`, device, cpu, 1e-5);
        }
      }),
  },
  {
    name: 'candidate sets with ties (bf16 logits of few distinct values) are the CPU’s: the lower index wins',
    run: () =>
      tidy(async () => {
        const [B, T, V] = [2, 8, QWEN_VOCAB];
        const rng = new Rng(15);
        // Eight distinct values, most of them far below the top: many exact ties at and around the K-th slot.
        const raw = Float32Array.from({ length: B * T * V }, () => Math.floor(rng.next() * 8) * 0.5 - (rng.next() < 0.999 ? 4 : 0));
        const old = Tensor.from(raw, [B, T, V]).to('bfloat16');
        const tokens = ids([B, T], V, 15);
        for (const k of [5, 16]) {
          const inputs = { tokens, mask: mask(B, T), k, minP: 1e-6 };
          const cpu = await runObjective<Record<string, Tensor>>('distrl_candidates', { ...inputs, oldLogits: old });
          const device = await runObjective<Record<string, Tensor>>('distrl_candidates', placed({ ...inputs, oldLogits: old }, PARITY_DEVICE, []));
          assert.deepEqual(values(device.candidateIndices), values(cpu.candidateIndices), `k = ${k}: candidate ids differ`);
          assert.deepEqual(values(device.candidateMask), values(cpu.candidateMask), `k = ${k}: candidate masks differ`);
          assertClose(`k = ${k}: candidate log-probs`, device.oldTopkLogprobs, cpu.oldTopkLogprobs, 1e-5);
        }
      }),
  },
  {
    name: 'float64 log ratios: formed in double on both devices',
    run: () =>
      tidy(async () => {
        const inputs = logRatioInputs(2, 5, 32_000, 'float32', 16);
        const cpu = await runObjective<Record<string, Tensor>>('prefix_values', inputs);
        const device = await runObjective<Record<string, Tensor>>('prefix_values', placed(inputs, PARITY_DEVICE, []));
        assert.equal(device.logRatio.dtype, cpu.logRatio.dtype);
        assertClose('log ratio', device.logRatio, cpu.logRatio, 1e-5);
        // The same model on both sides: exactly zero, however the sums round.
        const same = await runObjective<Record<string, Tensor>>('prefix_values', placed({ ...inputs, refLogits: inputs.logits }, PARITY_DEVICE, []));
        assert.ok(
          values(same.logRatio).every((x) => x === 0),
          'log π/π must be exactly 0',
        );
      }),
  },
];

async function withModel<T>(device: DeviceName, body: (model: CausalLM) => Promise<T>): Promise<T> {
  const model = await loadModel(FIXTURE, { device });
  try {
    return await body(model);
  } finally {
    model.dispose();
  }
}

const modelCases: ParityCase[] = [
  {
    name: 'decoder forward (logits) and backward (parameter gradients) on the CPU and the device',
    run: async () => {
      const run = (device: DeviceName) =>
        withModel(device, (model) =>
          tidy(async () => {
            const { inputIds, attentionMask } = padBatch(
              [
                [1, 5, 9, 3, 7, 2, 11, 4],
                [4, 8, 15, 16, 23],
              ],
              { side: 'left' },
            );
            const logits = values(await model.forward(inputIds, attentionMask));
            const parameters = model.parameters();
            for (const p of parameters.values()) p.requiresGrad = true;
            await (await model.tokenLogprobs(inputIds, attentionMask, { checkpoint: true })).sum().backwardAsync();
            const grads = Object.fromEntries([...parameters].map(([name, p]) => [name, values(p.grad!)]));
            for (const p of parameters.values()) p.requiresGrad = false;
            return { logits, grads };
          }),
        );
      const [cpu, device] = [await run('cpu'), await run(PARITY_DEVICE)];
      assert.ok(worstDifference(device.logits, cpu.logits) < 1e-4, `logits differ by ${worstDifference(device.logits, cpu.logits)}`);
      for (const [name, grad] of Object.entries(cpu.grads)) {
        const error = worstDifference(device.grads[name], grad);
        assert.ok(error < 1e-3, `∂/∂${name} differs by ${error}`);
      }
    },
  },
  {
    name: 'three DistRL steps (policy + online IPVRM) on the device match the same steps on the CPU',
    run: async () => {
      const tokenizer = await loadTokenizer(FIXTURE);
      const config = resolveRlConfig({
        algorithm: 'distrl-ipvrm',
        steps: 3,
        rollout: { promptsPerStep: 2, samples: 4, oversample: 1, maxNewTokens: 6 },
        actor: { lr: 1e-3, microBatch: 8 },
        rewardModel: { lr: 1e-4 },
      });
      const run = async (device: DeviceName): Promise<RlStep[]> => {
        const [policy, rewardModel, reference] = [
          await loadModel(FIXTURE, { device }),
          await loadModel(FIXTURE, { device }),
          await loadModel(FIXTURE, { device }),
        ];
        try {
          return await trainRl({ policy, rewardModel, reference }, tokenizer, makeRlRecords(0, 8), config, {
            reward: (rollout) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0),
          });
        } finally {
          for (const model of [policy, rewardModel, reference]) model.dispose();
        }
      };
      const [cpu, device] = [await run('cpu'), await run(PARITY_DEVICE)];
      // Sampling draws its uniforms on the CPU, so both devices sample the same tokens unless logits differ across a
      // sampling boundary; then the steps are not comparable and the case says so.
      for (const [i, step] of cpu.entries()) {
        const other = device[i];
        assert.equal(other.sequences, step.sequences, `step ${i}: trained on other sequences`);
        assert.equal(other.meanResponseLength, step.meanResponseLength, `step ${i}: sampled other responses`);
        for (const key of ['accuracy', 'loss', 'pgLoss', 'topkPgLoss', 'entropy', 'gradNorm', 'rmLoss'] as const) {
          const [a, b] = [other[key] ?? 0, step[key] ?? 0];
          assert.ok(worstDifference([a], [b]) < 1e-3, `step ${i}: ${key} ${a} on ${PARITY_DEVICE}, ${b} on cpu`);
        }
      }
    },
  },
];

// Data-parallel collectives of device tensors in a process group of one (the GPU machine has one GPU): over Gloo
// (CUDA tensors staged through host memory) and, where the addon has it, NCCL (on the device). A group of one sums
// to its input, so every collective must hand back exactly what it was given, where it was.
const distributedCases: ParityCase[] = [
  {
    name: 'collectives of device tensors in a group of one: all-reduce, broadcast, gradient reducer, all-gather (Gloo; NCCL where built)',
    run: async () => {
      const nccl = PARITY_DEVICE !== 'cpu' && environmentReport().build.distributedBackends.includes('nccl');
      const backends: DistributedBackend[] = nccl ? ['gloo', 'nccl'] : ['gloo'];
      for (const backend of backends) {
        const masterPort = 20_000 + Math.floor(Math.random() * 20_000);
        const group = await initProcessGroup(
          { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort },
          { backend, timeoutSeconds: 60, bucketBytes: 1024 },
        );
        try {
          await tidy(async () => {
            const tensors = [
              Tensor.randn([1000], 30).to(PARITY_DEVICE),
              Tensor.randn([3, 7], 31).to(PARITY_DEVICE).to('bfloat16'),
              Tensor.randn([5], 32, { dtype: 'float64' }), // a host tensor beside them
            ];
            const before = tensors.map(values);
            const unchanged = (what: string) => {
              assert.deepEqual(tensors.map(values), before, `${backend} ${what}: a group of one changed its input`);
              assert.deepEqual(
                tensors.map((t) => t.device),
                [PARITY_DEVICE, PARITY_DEVICE, 'cpu'],
                `${backend} ${what}: moved a tensor`,
              );
            };
            await group.allReduce(tensors);
            unchanged('allReduce');
            await group.broadcast(tensors);
            unchanged('broadcast');
            // One parameter with a gradient, one without (it keeps none), in buckets of 1 KiB.
            const [p, q] = [Tensor.randn([640], 33).to(PARITY_DEVICE), Tensor.randn([8], 34).to(PARITY_DEVICE)];
            p.requiresGrad = true;
            q.requiresGrad = true;
            const reducer = group.gradientReducer([p, q]);
            await reducer.arm();
            await p.mul(3).sum().backwardAsync();
            await reducer.finish();
            await reducer.close();
            assert.deepEqual(values(p.grad!), Array(640).fill(3), `${backend}: the reduced gradient`);
            assert.equal(q.grad, null, `${backend}: a parameter without a gradient got one`);
            const [gathered] = await group.allGather(tensors[0]);
            assert.deepEqual(values(gathered), before[0], `${backend}: allGather`);
          });
        } finally {
          await group.close();
        }
      }
    },
  },
];

export const PARITY_CASES: ParityCase[] = [...objectiveCases, ...headCases, ...edgeCases, ...modelCases, ...distributedCases];
