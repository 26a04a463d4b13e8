// The fused LM head (headLogprobs): log-probs and gradients (hidden and head weight) equal the unfused path — linear,
// then the fused gather — at 1e-9 in float64 and to rounding in float32 and bf16, for chunk sizes that do and do not
// divide V, a temperature ≠ 1, rows with no gradient and a tied head (the weight used twice); the decoder's
// tokenLogprobs through it equals the logits path; a LoRA on the head (its low-rank term) likewise, values and
// gradients of its factors, and with PEFT's adapter on the decoder's tied head; a frozen head's backward from the
// forward's expectations (no recompute) likewise; bad input gets clear errors.
import { join } from 'node:path';
import { loadModel, padBatch } from '../lib/model/index.js';
import { distrlCandidates, distrlTd, headLogprobs, headLogprobsAndEntropy, tokenEntropy, tokenLogprobs } from '../lib/ops/objectives.js';
import { Tensor, tidy, type DType } from '../lib/tensor/index.js';
import { worstDifference } from './helpers/compare.js';
import { onEachHeadPath, withNativeEnv } from './helpers/native-env.js';

const [N, H, V, K] = [6, 5, 37, 3];

function inputs(dtype: DType) {
  return tidy(() => ({
    hidden: Tensor.randn([2, N / 2, H], 1, { dtype: 'float64' })
      .to(dtype)
      .keep(),
    weight: Tensor.randn([V, H], 2, { dtype: 'float64' }).mul(2).to(dtype).keep(),
    index: Tensor.rand([2, N / 2, K], 3, { dtype: 'float64' })
      .mul(V)
      .to('int64')
      .keep(),
    // Row 1 of batch 0 and row 2 of batch 1 get no gradient.
    g: Tensor.from(
      Float64Array.from({ length: N * K }, (_, i) => ([1, 5].includes(Math.floor(i / K)) ? 0 : 1 + ((i * 7) % 5) / 3)),
      [2, N / 2, K],
    ).keep(),
  }));
}

/** A tied head: the same weight also makes part of the input (as the embedding does). */
const tiedHidden = (p: { hidden: Tensor; weight: Tensor }) =>
  p.hidden.add(
    p.weight
      .slice(0, 0, N)
      .reshape([2, N / 2, H])
      .mul(0.5),
  );

/** Log-probs and the gradients of Σ g·logp w.r.t. hidden and weight, fused or unfused; `tied` uses the weight a second time. */
async function run(dtype: DType, fused: boolean, options: { chunkSize?: number; temperature?: number; tied?: boolean } = {}) {
  return tidy(async () => {
    const p = inputs(dtype);
    p.hidden.requiresGrad = true;
    p.weight.requiresGrad = true;
    // A tied head: the same weight also makes part of the input (as the embedding does).
    const hidden = options.tied ? tiedHidden(p) : p.hidden;
    const logp = fused
      ? await headLogprobs(hidden, p.weight, p.index, options)
      : await tokenLogprobs(hidden.matmul(p.weight.transpose(0, 1)), p.index, { temperature: options.temperature });
    await logp.to('float64').mul(p.g).sum().backwardAsync();
    const numbers = (t: Tensor) => t.to('float64').toNumbers();
    return { logp: numbers(logp), hidden: numbers(p.hidden.grad!), weight: numbers(p.weight.grad!) };
  });
}

describe('headLogprobs equals linear → log-softmax gather', () => {
  test.each([
    ['float64', 1, 1e-9],
    ['float64', 7, 1e-9],
    ['float64', 37, 1e-9],
    ['float64', 4096, 1e-9],
    ['float32', 8, 1e-5],
    ['bfloat16', 8, 3e-2],
  ] as [DType, number, number][])('%s, chunk %i (tolerance %f)', async (dtype, chunkSize, tolerance) => {
    await onEachHeadPath(async () => {
      for (const variant of [{}, { temperature: 0.7 }, { tied: true }]) {
        const fused = await run(dtype, true, { chunkSize, ...variant });
        const unfused = await run(dtype, false, variant);
        for (const key of ['logp', 'hidden', 'weight'] as const) expect(worstDifference(fused[key], unfused[key])).toBeLessThan(tolerance);
        // Rows with no gradient get none.
        expect(fused.hidden.slice(1 * H, 2 * H).every((x) => x === 0)).toBe(true);
      }
    });
  });

  test('a NaN logit anywhere in the vocabulary makes the row NaN (never skipped with its chunk)', async () => {
    await onEachHeadPath(async () => {
      await tidy(async () => {
        const p = inputs('float32');
        // Vocabulary row 30 (in the last chunk of 8) holds a NaN; the gathered tokens all lie below it.
        const weight = Tensor.cat([p.weight.slice(0, 0, 30), Tensor.full([1, H], NaN), p.weight.slice(0, 31, V)], 0);
        const index = Tensor.zeros([2, N / 2, 1], { dtype: 'int64' });
        const { logprobs, entropy } = await headLogprobsAndEntropy(p.hidden, weight, index, { chunkSize: 8 });
        expect(logprobs.toNumbers().every(Number.isNaN)).toBe(true);
        expect(entropy.toNumbers().every(Number.isNaN)).toBe(true);
      });
    });
  });

  test('bad input is refused, naming what is wrong', async () => {
    const p = inputs('float32');
    await expect(headLogprobs(p.hidden, p.weight, p.index, { chunkSize: 0 })).rejects.toThrow(/chunkSize must be a positive integer, got 0/);
    await expect(headLogprobs(p.hidden, p.weight.slice(1, 0, 4), p.index)).rejects.toThrow(/weight must be \[V, H\] with H = 5/);
    await expect(headLogprobs(p.hidden, p.weight.to('float64'), p.index)).rejects.toThrow(/weight is float64 but hidden is float32/);
    await expect(headLogprobs(p.hidden, p.weight, Tensor.full([2, N / 2, K], V, { dtype: 'int64' }))).rejects.toThrow(
      /token index out of range: found \d+ for a vocabulary of 37/,
    );
    await expect(headLogprobs(p.hidden, p.weight, p.index.slice(1, 0, 2))).rejects.toThrow(/index has shape \[2, 2, 3\]/);
    await expect(headLogprobs(p.hidden, p.weight, p.index, { temperature: 0 })).rejects.toThrow(/temperature must be/);
    // The switches reach the addon (a mistyped one is refused, never silently the default path).
    await expect(withNativeEnv({ PREFIX_RL_HEAD_KERNELS: 'atne' }, () => headLogprobs(p.hidden, p.weight, p.index))).rejects.toThrow(
      /PREFIX_RL_HEAD_KERNELS must be 'aten' or unset, got 'atne'/,
    );
    await expect(withNativeEnv({ PREFIX_RL_HEAD_RECOMPUTE: 'yes' }, () => headLogprobs(p.hidden, p.weight, p.index))).rejects.toThrow(
      /PREFIX_RL_HEAD_RECOMPUTE must be '0', '1' or unset/,
    );
    for (const t of Object.values(p)) t.dispose();
  });
});

// A LoRA on the head: logits = hidden · Wᵀ + hidden_r · Bᵀ with hidden_r = scale · hidden · Aᵀ, A [R, H], B [V, R].
const [R, SCALE] = [2, 1.5];

/**
 * Log-probs (and entropies) and the gradients of Σ g·logp (+ Σ gH·H) w.r.t. hidden, W, A and B, through the fused
 * head with the LoRA term, or from the logits hidden · Wᵀ + hidden_r · Bᵀ.
 */
async function runLora(dtype: DType, fused: boolean, options: { chunkSize?: number; temperature?: number; tied?: boolean; entropy?: boolean } = {}) {
  return tidy(async () => {
    const p = inputs(dtype);
    // Logits of the size the other cases have (|z| ≲ 8), so that bf16 rounds them alike.
    const a = Tensor.randn([R, H], 11, { dtype: 'float64' }).mul(0.5).to(dtype);
    const b = Tensor.randn([V, R], 12, { dtype: 'float64' }).mul(0.3).to(dtype);
    for (const t of [p.hidden, p.weight, a, b]) t.requiresGrad = true;
    const hidden = options.tied ? tiedHidden(p) : p.hidden;
    const loraHidden = hidden.matmul(a.transpose(0, 1)).mul(SCALE);
    const { temperature, chunkSize } = options;
    let logp: Tensor;
    let entropy: Tensor | undefined;
    if (fused) {
      const headOptions = { temperature, chunkSize, lora: { hidden: loraHidden, weight: b } };
      if (options.entropy) ({ logprobs: logp, entropy } = await headLogprobsAndEntropy(hidden, p.weight, p.index, headOptions));
      else logp = await headLogprobs(hidden, p.weight, p.index, headOptions);
    } else {
      const logits = hidden.matmul(p.weight.transpose(0, 1)).add(loraHidden.matmul(b.transpose(0, 1)));
      logp = await tokenLogprobs(logits, p.index, { temperature });
      if (options.entropy) entropy = await tokenEntropy(logits, { temperature });
    }
    let loss = logp.to('float64').mul(p.g).sum();
    if (entropy) loss = loss.add(entropy.to('float64').mul(0.3).sum());
    await loss.backwardAsync();
    const numbers = (t: Tensor) => t.to('float64').toNumbers();
    return {
      logp: numbers(logp),
      entropy: entropy ? numbers(entropy) : [],
      hidden: numbers(p.hidden.grad!),
      weight: numbers(p.weight.grad!),
      a: numbers(a.grad!),
      b: numbers(b.grad!),
    };
  });
}

describe('a LoRA on the head: the fused head equals the logits of hidden · Wᵀ + scale · (hidden · Aᵀ) · Bᵀ', () => {
  test.each([
    ['float64', 1, 1e-9],
    ['float64', 7, 1e-9],
    ['float64', 37, 1e-9],
    // A's gradient sums the chunks' dz · B, then passes hidden_r's chain: one more rounded sum than the others.
    ['float32', 8, 3e-5],
    ['bfloat16', 8, 5e-2],
  ] as [DType, number, number][])('%s, chunk %i (tolerance %f): values and gradients of hidden, W, A and B', async (dtype, chunkSize, tolerance) => {
    await onEachHeadPath(async () => {
      for (const variant of [{}, { temperature: 0.7 }, { tied: true }, { entropy: true }]) {
        const fused = await runLora(dtype, true, { chunkSize, ...variant });
        const unfused = await runLora(dtype, false, variant);
        for (const key of ['logp', 'entropy', 'hidden', 'weight', 'a', 'b'] as const) {
          expect(worstDifference(fused[key], unfused[key])).toBeLessThan(tolerance);
        }
        // The adapter's factors get gradients (the comparison is not of zeros).
        expect(Math.max(...fused.a.map(Math.abs))).toBeGreaterThan(1e-3);
      }
    });
  });

  test('distrlCandidates and distrlTd take the LoRA term and equal the logits path', async () => {
    await onEachHeadPath(async () => {
      await tidy(async () => {
        const p = inputs('float64');
        const loraHidden = p.hidden.matmul(Tensor.randn([H, R], 13, { dtype: 'float64' })).mul(SCALE);
        const loraWeight = Tensor.randn([V, R], 14, { dtype: 'float64' });
        const logits = p.hidden.matmul(p.weight.transpose(0, 1)).add(loraHidden.matmul(loraWeight.transpose(0, 1)));
        const common = { tokens: p.index.select(-1, 0), mask: Tensor.ones([2, N / 2]), k: 4, minP: 0.02 };
        const fromLogits = await distrlCandidates({ oldLogits: logits, ...common });
        const fused = await distrlCandidates({ oldHidden: p.hidden, headWeight: p.weight, loraHidden, loraWeight, chunkSize: 5, ...common });
        expect(fused.candidateIndices.toNumbers()).toEqual(fromLogits.candidateIndices.toNumbers());
        expect(worstDifference(fused.oldTopkLogprobs.toNumbers(), fromLogits.oldTopkLogprobs.toNumbers())).toBeLessThan(1e-9);
        const td = { candidateIndices: fused.candidateIndices, oldTopkLogprobs: fused.oldTopkLogprobs.mul(0.9), mask: common.mask, beta: 2 };
        const tdLogits = await distrlTd({ rmLogits: logits, ...td });
        const tdFused = await distrlTd({ rmHidden: p.hidden, headWeight: p.weight, loraHidden, loraWeight, chunkSize: 4, ...td });
        expect(worstDifference(tdFused.candidateTd.toNumbers(), tdLogits.candidateTd.toNumbers())).toBeLessThan(1e-9);
      });
    });
  });

  test('bad LoRA terms are refused, naming what is wrong', async () => {
    await tidy(async () => {
      const p = inputs('float32');
      const hidden = Tensor.randn([2, N / 2, R], 15);
      const weight = Tensor.randn([V, R], 16);
      const call = (lora: { hidden: Tensor; weight: Tensor }) => headLogprobs(p.hidden, p.weight, p.index, { lora });
      await expect(call({ hidden, weight: weight.slice(0, 0, V - 1) })).rejects.toThrow(/loraWeight must be \[V, r\] with V = 37, got \[36, 2\]/);
      await expect(call({ hidden: hidden.slice(-1, 0, 1), weight })).rejects.toThrow(/loraHidden has shape \[2, 3, 1\].*r = 2/);
      await expect(call({ hidden: hidden.slice(0, 0, 1), weight })).rejects.toThrow(/loraHidden has shape \[1, 3, 2\]/);
      await expect(call({ hidden, weight: weight.to('float64') })).rejects.toThrow(/loraWeight is float64 but hidden is float32/);
      const tokens = p.index.select(-1, 0);
      await expect(
        distrlCandidates({ oldHidden: p.hidden, headWeight: p.weight, loraHidden: hidden, tokens, mask: Tensor.ones([2, N / 2]) }),
      ).rejects.toThrow(/needs both loraHidden and loraWeight/);
    });
  });
});

/**
 * A frozen head (W, and a LoRA's B, not trained: a LoRA actor's): log-probs (and entropies) and the gradients of
 * Σ g·logp (+ Σ 0.3·H unless the entropy is a metric) w.r.t. hidden (and A), fused or from the logits. `entropy`:
 * 'metric' (entropyGradient false, not differentiated: the expectations path), 'gradient' (the recompute path) or
 * 'unpromised' (entropyGradient false yet differentiated: the expectations are dropped for the recompute).
 */
async function runFrozen(
  dtype: DType,
  fused: boolean,
  options: { chunkSize?: number; temperature?: number; lora?: boolean; entropy?: 'metric' | 'gradient' | 'unpromised' } = {},
) {
  return tidy(async () => {
    const p = inputs(dtype);
    p.hidden.requiresGrad = true;
    const a = Tensor.randn([R, H], 11, { dtype: 'float64' }).mul(0.5).to(dtype);
    const b = Tensor.randn([V, R], 12, { dtype: 'float64' }).mul(0.3).to(dtype);
    a.requiresGrad = true;
    const loraHidden = options.lora ? p.hidden.matmul(a.transpose(0, 1)).mul(SCALE) : undefined;
    const { temperature, chunkSize } = options;
    let logp: Tensor;
    let entropy: Tensor | undefined;
    if (fused) {
      const headOptions = { temperature, chunkSize, lora: loraHidden && { hidden: loraHidden, weight: b } };
      if (options.entropy) {
        const entropyGradient = options.entropy === 'gradient';
        ({ logprobs: logp, entropy } = await headLogprobsAndEntropy(p.hidden, p.weight, p.index, { ...headOptions, entropyGradient }));
      } else {
        logp = await headLogprobs(p.hidden, p.weight, p.index, headOptions);
      }
    } else {
      let logits = p.hidden.matmul(p.weight.transpose(0, 1));
      if (loraHidden) logits = logits.add(loraHidden.matmul(b.transpose(0, 1)));
      logp = await tokenLogprobs(logits, p.index, { temperature });
      if (options.entropy) entropy = await tokenEntropy(logits, { temperature });
    }
    let loss = logp.to('float64').mul(p.g).sum();
    if (entropy && options.entropy !== 'metric') loss = loss.add(entropy.to('float64').mul(0.3).sum());
    await loss.backwardAsync();
    const numbers = (t: Tensor) => t.to('float64').toNumbers();
    expect(p.weight.grad).toBeNull();
    return {
      logp: numbers(logp),
      entropy: entropy ? numbers(entropy) : [],
      hidden: numbers(p.hidden.grad!),
      a: options.lora ? numbers(a.grad!) : [],
    };
  });
}

describe('a frozen head: the backward from the forward’s expectations equals the logits path', () => {
  test.each([
    ['float64', 1, 1e-9],
    ['float64', 7, 1e-9],
    ['float64', 37, 1e-9],
    ['float32', 8, 1e-5],
    // bf16 gradients wander to ≈0.04 of their size here on either backward (recompute: up to 0.043).
    ['bfloat16', 8, 6e-2],
  ] as [DType, number, number][])('%s, chunk %i (tolerance %f): values and gradients of hidden (and A)', async (dtype, chunkSize, tolerance) => {
    await onEachHeadPath(async () => {
      const variants = [
        {},
        { temperature: 0.7 },
        { lora: true },
        { entropy: 'metric' },
        { entropy: 'gradient' },
        { entropy: 'unpromised', lora: true },
      ];
      for (const variant of variants as Parameters<typeof runFrozen>[2][]) {
        const fused = await runFrozen(dtype, true, { chunkSize, ...variant });
        const unfused = await runFrozen(dtype, false, variant);
        for (const key of ['logp', 'entropy', 'hidden', 'a'] as const) expect(worstDifference(fused[key], unfused[key])).toBeLessThan(tolerance);
        // Rows with no gradient get none (the entropy's term reaches every row); the others do (the comparison is not of zeros).
        if (!variant?.entropy || variant.entropy === 'metric') expect(fused.hidden.slice(1 * H, 2 * H).every((x) => x === 0)).toBe(true);
        expect(Math.max(...fused.hidden.map(Math.abs))).toBeGreaterThan(1e-2);
      }
    });
  });

  test('PREFIX_RL_HEAD_RECOMPUTE=1 recomputes the logits instead, to the same gradients', async () => {
    const fromExpectations = await runFrozen('float64', true, { chunkSize: 7, lora: true });
    const recomputed = await withNativeEnv({ PREFIX_RL_HEAD_RECOMPUTE: '1' }, () => runFrozen('float64', true, { chunkSize: 7, lora: true }));
    for (const key of ['logp', 'hidden', 'a'] as const) expect(worstDifference(recomputed[key], fromExpectations[key])).toBeLessThan(1e-12);
    // Two computations ran (their float64 sums differ in the last bits), not one path twice.
    expect(recomputed.hidden.some((x, i) => x !== fromExpectations.hidden[i])).toBe(true);
  });

  test('confident rows (p ≈ 1 at the sampled token) keep their small gradient in bf16, and duplicated ids count once', async () => {
    await onEachHeadPath(async () => {
      await tidy(async () => {
        const p = inputs('float64');
        const [hidden0, weight] = [p.hidden.reshape([N, H]), p.weight];
        // The row's most likely token, made ≥ 0.99 likely by scaling the hidden states; a duplicated id in each row.
        const logits0 = hidden0.matmul(weight.transpose(0, 1)).toNumbers();
        const top = Array.from({ length: N }, (_, n) => {
          const row = logits0.slice(n * V, (n + 1) * V);
          return row.indexOf(Math.max(...row));
        });
        let factor = 1;
        for (;;) {
          const logp = await tokenLogprobs(
            hidden0.mul(factor).matmul(weight.transpose(0, 1)),
            Tensor.from(BigInt64Array.from(top.map(BigInt)), [N, 1]),
          );
          if (Math.min(...logp.toNumbers().map(Math.exp)) > 0.99) break;
          factor *= 1.25;
        }
        const index = Tensor.from(BigInt64Array.from(top.flatMap((id, n) => [BigInt(id), BigInt(id), BigInt((id + 1 + n) % V)])), [N, 3]);
        const g = Tensor.from(
          Float64Array.from({ length: N * 3 }, (_, i) => [1, 0.5, -0.25][i % 3]),
          [N, 3],
        );
        // bf16 inputs; the reference is the unfused path in float64 on the same rounded values.
        const [h16, w16] = [hidden0.mul(factor).to('bfloat16'), weight.to('bfloat16')];
        const gradient = async (dtype: DType, fused: boolean) =>
          tidy(async () => {
            const h = h16.to(dtype);
            h.requiresGrad = true;
            const w = w16.to(dtype);
            const logp = fused ? await headLogprobs(h, w, index, { chunkSize: 8 }) : await tokenLogprobs(h.matmul(w.transpose(0, 1)), index);
            await logp.to('float64').mul(g).sum().backwardAsync();
            return h.grad!.to('float64').toNumbers();
          });
        const reference = await gradient('float64', false);
        const scale = Math.max(...reference.map(Math.abs));
        const relative = (x: number[]) => Math.max(...x.map((v, i) => Math.abs(v - reference[i]))) / scale;
        expect(relative(await gradient('bfloat16', true))).toBeLessThan(2e-2);
        expect(relative(await withNativeEnv({ PREFIX_RL_HEAD_RECOMPUTE: '1' }, () => gradient('bfloat16', true)))).toBeLessThan(2e-2);
        expect(relative(await gradient('float64', true))).toBeLessThan(1e-9);
      });
    });
  });
});

test('the decoder: tokenLogprobs through the fused head equals the logits path, values and gradients', async () => {
  const model = await loadModel(join(process.cwd(), 'fixtures/models/qwen3-tiny'));
  try {
    const { inputIds, attentionMask } = padBatch([
      [1, 5, 9, 3, 7, 2, 11, 4],
      [4, 8, 15, 16, 23],
    ]);
    const run = (fusedHead: boolean) =>
      tidy(async () => {
        const parameters = model.parameters();
        for (const p of parameters.values()) p.requiresGrad = true;
        const logprobs = await model.tokenLogprobs(inputIds, attentionMask, { fusedHead });
        await logprobs.sum().backwardAsync();
        const grads = ['model.embed_tokens.weight', 'model.layers.0.mlp.up_proj.weight'].map((name) => parameters.get(name)!.grad!.toNumbers());
        for (const p of parameters.values()) {
          p.zeroGrad();
          p.requiresGrad = false;
        }
        return { logprobs: logprobs.toNumbers(), grads };
      });
    const [fused, unfused] = [await run(true), await run(false)];
    expect(worstDifference(fused.logprobs, unfused.logprobs)).toBeLessThan(1e-5);
    fused.grads.forEach((grad, i) => expect(worstDifference(grad, unfused.grads[i])).toBeLessThan(1e-4));
  } finally {
    model.dispose();
  }
});

test("the decoder with PEFT's adapter on its tied head: tokenLogprobs fused equals the logits path, gradients to the adapter too", async () => {
  const model = await loadModel(join(process.cwd(), 'fixtures/models/qwen3-tiny'));
  try {
    await model.loadAdapter(join(process.cwd(), 'fixtures/models/qwen3-tiny-lora-head'));
    const { inputIds, attentionMask } = padBatch([
      [1, 5, 9, 3, 7, 2, 11, 4],
      [4, 8, 15, 16, 23],
    ]);
    await tidy(async () => {
      const input = await model.headInput(inputIds, attentionMask, { noGrad: true });
      expect(input.lora?.hidden.shape).toEqual([2, 8, 4]);
      expect(input.lora?.weight.shape).toEqual([83, 4]);
    });
    const names = [
      'base_model.model.lm_head.lora_A.weight',
      'base_model.model.lm_head.lora_B.weight',
      'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight',
    ];
    const run = (fusedHead: boolean) =>
      tidy(async () => {
        const adapter = model.loraParameters();
        const embedding = model.parameters().get('model.embed_tokens.weight')!;
        for (const p of [...adapter.values(), embedding]) p.requiresGrad = true;
        const logprobs = await model.tokenLogprobs(inputIds, attentionMask, { fusedHead });
        await logprobs.sum().backwardAsync();
        const grads = [...names.map((name) => adapter.get(name)!.grad!.toNumbers()), embedding.grad!.toNumbers()];
        for (const p of [...adapter.values(), embedding]) {
          p.zeroGrad();
          p.requiresGrad = false;
        }
        return { logprobs: logprobs.toNumbers(), grads };
      });
    const [fused, unfused] = [await run(true), await run(false)];
    expect(worstDifference(fused.logprobs, unfused.logprobs)).toBeLessThan(1e-5);
    fused.grads.forEach((grad, i) => {
      expect(Math.max(...grad.map(Math.abs))).toBeGreaterThan(0);
      expect(worstDifference(grad, unfused.grads[i])).toBeLessThan(1e-4);
    });
  } finally {
    model.dispose();
  }
});

/** Log-probs, entropies and the gradients of Σ g·logp + Σ gH·H, through headLogprobsAndEntropy or logits → tokenLogprobs + tokenEntropy. */
async function runEntropy(dtype: DType, fused: boolean, options: { chunkSize?: number; temperature?: number; logprobGrad?: boolean } = {}) {
  return tidy(async () => {
    const p = inputs(dtype);
    p.hidden.requiresGrad = true;
    p.weight.requiresGrad = true;
    const gH = Tensor.from(
      Float64Array.from({ length: N }, (_, i) => (i === 4 ? 0 : 0.5 + i / 4)),
      [2, N / 2],
    );
    let logp: Tensor, entropy: Tensor;
    if (fused) {
      ({ logprobs: logp, entropy } = await headLogprobsAndEntropy(p.hidden, p.weight, p.index, options));
    } else {
      const logits = p.hidden.matmul(p.weight.transpose(0, 1));
      logp = await tokenLogprobs(logits, p.index, { temperature: options.temperature });
      entropy = await tokenEntropy(logits, { temperature: options.temperature });
    }
    let loss = entropy.to('float64').mul(gH).sum();
    if (options.logprobGrad !== false) loss = loss.add(logp.to('float64').mul(p.g).sum());
    await loss.backwardAsync();
    const numbers = (t: Tensor) => t.to('float64').toNumbers();
    return { logp: numbers(logp), entropy: numbers(entropy), hidden: numbers(p.hidden.grad!), weight: numbers(p.weight.grad!) };
  });
}

describe('headLogprobsAndEntropy equals logits → tokenLogprobs + tokenEntropy', () => {
  test.each([
    ['float64', 1, 1e-9],
    ['float64', 7, 1e-9],
    ['float64', 4096, 1e-9],
    ['float32', 8, 1e-5],
    ['bfloat16', 8, 5e-2],
  ] as [DType, number, number][])('%s, chunk %i (tolerance %f)', async (dtype, chunkSize, tolerance) => {
    await onEachHeadPath(async () => {
      for (const variant of [{}, { temperature: 0.7 }, { logprobGrad: false }]) {
        const fused = await runEntropy(dtype, true, { chunkSize, ...variant });
        const unfused = await runEntropy(dtype, false, variant);
        for (const key of ['logp', 'entropy', 'hidden', 'weight'] as const) {
          expect(worstDifference(fused[key], unfused[key])).toBeLessThan(tolerance);
        }
      }
    });
  });
});

/** π_old's candidate set from logits and through the fused head, on the same hidden states. */
async function candidatesBoth(dtype: DType, options: Record<string, number | string> = {}, tieRows = false) {
  const p = inputs(dtype);
  // Duplicate head rows make exactly tied logits: the lower token id must win the tie either way.
  const weight = tieRows ? Tensor.cat([p.weight.slice(0, 0, 4), p.weight.slice(0, 0, 4), p.weight.slice(0, 8, V)], 0) : p.weight;
  const tokens = p.index.select(-1, 0);
  const mask = Tensor.from(Float32Array.from([1, 1, 1, 1, 1, 0]), [2, N / 2]);
  const common = { tokens, mask, k: 4, minP: 0.02, ...options };
  const fromLogits = await distrlCandidates({ oldLogits: p.hidden.matmul(weight.transpose(0, 1)), ...common });
  const fused = await distrlCandidates({ oldHidden: p.hidden, headWeight: weight, ...common });
  return { fromLogits, fused, p, weight };
}

describe('distrlCandidates through the fused head equals the logits path', () => {
  test.each([
    ['float64', 1e-9],
    ['float32', 1e-5],
    ['bfloat16', 3e-2],
  ] as [DType, number][])('%s', async (dtype, tolerance) => {
    await onEachHeadPath(async () => {
      for (const [options, tied] of [
        [{ chunkSize: 5 }, false],
        [{ chunkSize: 37, temperature: 0.7 }, false],
        [{ chunkSize: 3, topP: 0.6 }, false],
        [{ chunkSize: 2 }, true],
        [{ chunkSize: 6, conventions: 'paper', minP: 0.2 }, false],
      ] as [Record<string, number | string>, boolean][]) {
        const { fromLogits, fused } = await candidatesBoth(dtype, options, tied);
        if (dtype !== 'bfloat16') {
          expect(fused.candidateIndices.toNumbers()).toEqual(fromLogits.candidateIndices.toNumbers());
          expect(fused.candidateMask.toNumbers()).toEqual(fromLogits.candidateMask.toNumbers());
        }
        expect(worstDifference(fused.oldLogProb.toNumbers(), fromLogits.oldLogProb.toNumbers())).toBeLessThan(tolerance);
        expect(fused.oldTopkLogprobs.dtype).toBe(fromLogits.oldTopkLogprobs.dtype);
        if (tied) {
          // The ties are exercised: some position holds a token and its duplicate (id + 4) among its candidates.
          const rows = (fromLogits.candidateIndices.toNested() as number[][][]).flat();
          expect(rows.some((ids) => ids.some((id) => id < 4 && ids.includes(id + 4)))).toBe(true);
        }
      }
    });
  });

  test("each candidate's log-prob is exactly headLogprobs' at that token: π_θ / π_old = 1 on-policy", async () => {
    await onEachHeadPath(async () => {
      for (const dtype of ['float32', 'bfloat16'] as DType[]) {
        const { fused, p } = await candidatesBoth(dtype, { chunkSize: 7, temperature: 0.9 });
        const policy = await headLogprobs(p.hidden, p.weight, fused.candidateIndices, { chunkSize: 7, temperature: 0.9 });
        expect(policy.toNumbers()).toEqual(fused.oldTopkLogprobs.toNumbers());
      }
    });
  });

  test('distrlTd through the fused head equals the logits path', async () => {
    const { fused, p } = await candidatesBoth('float64', { chunkSize: 5 });
    const rm = inputs('float64');
    const common = { candidateIndices: fused.candidateIndices, oldTopkLogprobs: fused.oldTopkLogprobs, mask: Tensor.ones([2, N / 2]), beta: 2 };
    const fromLogits = await distrlTd({ rmLogits: rm.hidden.mul(0.5).matmul(p.weight.transpose(0, 1)), ...common });
    const head = await distrlTd({ rmHidden: rm.hidden.mul(0.5), headWeight: p.weight, chunkSize: 4, ...common });
    expect(worstDifference(head.candidateTd.toNumbers(), fromLogits.candidateTd.toNumbers())).toBeLessThan(1e-9);
  });

  test('bad input is refused, naming what is wrong', async () => {
    const p = inputs('float32');
    const tokens = p.index.select(-1, 0);
    const mask = Tensor.ones([2, N / 2]);
    const logits = p.hidden.matmul(p.weight.transpose(0, 1));
    await expect(distrlCandidates({ oldLogits: logits, oldHidden: p.hidden, headWeight: p.weight, tokens, mask })).rejects.toThrow(
      /oldLogits or oldHidden/,
    );
    await expect(distrlCandidates({ oldHidden: p.hidden, headWeight: p.weight, tokens: tokens.slice(1, 0, 2), mask })).rejects.toThrow(
      /tokens must be \[B, T\] = \[2, 3\]/,
    );
    await expect(distrlCandidates({ oldHidden: p.hidden, headWeight: p.weight, tokens, mask, chunkSize: 0 })).rejects.toThrow(/chunkSize/);
    await expect(distrlCandidates({ oldHidden: p.hidden, headWeight: p.weight, tokens, mask, k: V + 1 })).rejects.toThrow(/K must be in \[1, V=37\]/);
    await expect(distrlCandidates({ oldHidden: p.hidden, tokens, mask })).rejects.toThrow(/headWeight/);
  });
});
