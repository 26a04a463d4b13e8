// The fused objectives beyond the golden files: finite differences on fresh random inputs, parity with the naive
// ATen composition up to V = 151,936, exact zeros at masked positions, fp32 candidate sets equal to fp64, bad input.
import {
  distrlCandidates,
  distrlLoss,
  dpoRm,
  implicitPrmCe,
  implicitPrmOnline,
  ipvrmOffline,
  ipvrmOnline,
  dpoOnline,
  prefixValues,
  tokenEntropy,
  tokenLogprobs,
} from '../lib/ops/objectives.js';
import { outcomePairCount } from '../lib/algorithms/reward-models/index.js';
import { environmentReport, releaseBufferCache, setBufferCacheLimit } from '../lib/native/runtime.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

/** Deterministic pseudo-random token ids in [0, vocab) (int64 conversion truncates, i.e. floors positives). */
function randomTokens(shape: number[], vocab: number, seed: number): Tensor {
  return Tensor.rand(shape, seed, { dtype: 'float64' }).mul(vocab).to('int64');
}

function responseMask(lengths: number[], T: number, promptLengths: number[] = []): Tensor {
  const rows = lengths.map((L, b) => Array.from({ length: T }, (_, t) => (t >= (promptLengths[b] ?? 0) && t < (promptLengths[b] ?? 0) + L ? 1 : 0)));
  return Tensor.from(rows, undefined, { dtype: 'float64' });
}

/** Central finite differences of scalar f at x (float64) over the given flat indices. */
async function finiteDifferences(x: Tensor, f: (x: Tensor) => Promise<number>, indices: number[], h = 1e-6): Promise<number[]> {
  const base = Float64Array.from(x.toArray() as Float64Array);
  const out: number[] = [];
  for (const i of indices) {
    const plus = Float64Array.from(base);
    plus[i] += h;
    const minus = Float64Array.from(base);
    minus[i] -= h;
    out.push(((await f(Tensor.from(plus, x.shape))) - (await f(Tensor.from(minus, x.shape)))) / (2 * h));
  }
  return out;
}

async function checkGradient(name: string, logits: Tensor, loss: (logits: Tensor) => Promise<Tensor>, sampleEvery = 3): Promise<void> {
  const x = logits.detach();
  x.requiresGrad = true;
  await (await loss(x)).backwardAsync();
  const grad = x.grad!.toArray() as Float64Array;
  const indices = Array.from({ length: Math.ceil(grad.length / sampleEvery) }, (_, i) => i * sampleEvery);
  const fd = await finiteDifferences(logits, async (y) => (await loss(y)).item(), indices);
  indices.forEach((i, j) => {
    const err = Math.abs(grad[i] - fd[j]);
    if (err > 1e-6 * Math.max(1, Math.abs(fd[j]))) throw new Error(`${name}: d/dlogits[${i}] = ${grad[i]}, finite difference ${fd[j]}`);
  });
}

describe('finite-difference gradients on random inputs (float64)', () => {
  const B = 4;
  const T = 6;
  const V = 9;
  const setup = (seed: number) => ({
    logits: Tensor.randn([B, T, V], seed, { dtype: 'float64' }),
    refLogits: Tensor.randn([B, T, V], seed + 1, { dtype: 'float64' }),
    tokens: randomTokens([B, T], V, seed + 2),
    mask: responseMask([4, 6, 2, 5], T, [1, 0, 2, 0]),
  });

  test('IPVRM offline, every weighting', async () => {
    await tidy(async () => {
      const s = setup(101);
      const labels = Tensor.from([1, 0, 1, 0], undefined, { dtype: 'float64' });
      for (const weighting of ['token_mean', 'uniform', 'late', 'early'] as const) {
        await checkGradient(
          `ipvrm ${weighting}`,
          s.logits,
          async (logits) => (await ipvrmOffline({ ...s, logits, labels, beta: 2, margin: 0.5, weighting })).loss,
        );
      }
    });
  });

  test('online IPVRM with ADB + DLW, Implicit PRM, DPO-RM', async () => {
    await tidy(async () => {
      const s = setup(202);
      const acc = Tensor.from([1, 0, 0, 1], undefined, { dtype: 'float64' });
      await checkGradient(
        'ipvrm online',
        s.logits,
        async (logits) => (await ipvrmOnline({ ...s, logits, acc, groupSize: 4, beta: 3, margin: 1 })).loss,
      );
      await checkGradient('implicit prm', s.logits, async (logits) => (await implicitPrmCe({ ...s, logits, labels: acc, beta: 0.5 })).loss);
      await checkGradient('dpo bt_mean', s.logits, async (logits) => (await dpoRm({ ...s, logits, beta: 0.7, gamma: 0.1, reduction: 'mean' })).loss);
    });
  });

  test('token entropy (weighted sum over positions, temperature 0.7)', async () => {
    await tidy(async () => {
      const s = setup(404);
      const weights = Tensor.randn([B, T], 11, { dtype: 'float64' });
      await checkGradient('entropy', s.logits.mul(2), async (logits) => (await tokenEntropy(logits, { temperature: 0.7 })).mul(weights).sum(), 1);
    });
  });

  test('DistRL Tok-PPO + Dist-PPO w.r.t. the new logits (both conventions)', async () => {
    await tidy(async () => {
      const s = setup(303);
      const mask = responseMask([6, 5, 4, 6], T);
      const candidates = await distrlCandidates({ oldLogits: s.refLogits, tokens: s.tokens, mask, k: 4, minP: 0.05 });
      const advantages = Tensor.randn([B, T], 9, { dtype: 'float64' });
      const scaledCandidateTd = Tensor.randn([B, T, 4], 10, { dtype: 'float64' });
      for (const conventions of ['reference', 'paper'] as const) {
        await checkGradient(
          `distrl ${conventions}`,
          s.logits.mul(0.3).add(s.refLogits),
          async (newLogits) =>
            (
              await distrlLoss({
                ...candidates,
                newLogits,
                advantages,
                scaledCandidateTd,
                mask,
                alpha: 0.5,
                conventions,
              })
            ).loss,
        );
      }
    });
  });
});

describe('fused log-probs vs the naive composition (log_softmax → gather)', () => {
  const shapes: [number, number, number][] = [
    [3, 5, 7],
    [2, 17, 1000],
    [1, 4, 32000],
    [1, 3, 151936],
  ];
  for (const [B, T, V] of shapes) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      test(`${dtype} [${B}, ${T}, ${V}]: forward and backward`, async () => {
        await tidy(async () => {
          const base = Tensor.randn([B, T, V], B * T + V, { dtype: 'float32' })
            .mul(3)
            .to(dtype);
          const index = Tensor.rand([B, T, 3], 5, { dtype: 'float64' }).mul(V).to('int64');
          const upstream = Tensor.randn([B, T, 3], 6, { dtype: 'float32' });

          const fusedIn = base.detach();
          fusedIn.requiresGrad = true;
          const fused = await tokenLogprobs(fusedIn, index);
          await fused.backwardAsync(upstream);

          const naiveIn = base.detach();
          naiveIn.requiresGrad = true;
          const naive = naiveIn.to('float32').logSoftmax(-1).gather(-1, index);
          await naive.backwardAsync(upstream);

          const maxDiff = (a: Tensor, b: Tensor) => a.to('float32').sub(b.to('float32')).abs().max().item();
          expect(maxDiff(fused, naive)).toBeLessThan(2e-5 * Math.log(V));
          const gradScale = naiveIn.grad!.to('float32').abs().max().item();
          // fp32: both sides sum 10^5 exponentials in float (1e-5 of the largest entry); bf16 gradients round to 8 bits.
          expect(maxDiff(fusedIn.grad!, naiveIn.grad!)).toBeLessThan((dtype === 'bfloat16' ? 8e-3 : 1e-5) * gradScale);
        });
      });
    }
  }

  for (const [B, T, V] of shapes) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      test(`entropy, ${dtype} [${B}, ${T}, ${V}]: forward and backward`, async () => {
        await tidy(async () => {
          const base = Tensor.randn([B, T, V], B * T + V + 1, { dtype: 'float32' })
            .mul(3)
            .to(dtype);
          const upstream = Tensor.randn([B, T], 7, { dtype: 'float32' });

          const fusedIn = base.detach();
          fusedIn.requiresGrad = true;
          const fused = await tokenEntropy(fusedIn);
          await fused.backwardAsync(upstream);

          const naive = async (precision: 'float32' | 'float64') => {
            const x = base.detach().to(precision);
            x.requiresGrad = true;
            const logp = x.logSoftmax(-1);
            const entropy = logp.exp().mul(logp).sum(-1).neg();
            await entropy.backwardAsync(upstream.to(precision));
            return { entropy, grad: x.grad! };
          };
          const [single, exact] = [await naive('float32'), await naive('float64')];

          const maxDiff = (a: Tensor, b: Tensor) => a.to('float64').sub(b.to('float64')).abs().max().item();
          // Against float64 on the same values; the float32 composition's own errors are of the same size.
          expect(maxDiff(fused, exact.entropy)).toBeLessThan(Math.max(2e-6 * Math.log(V), 2 * maxDiff(single.entropy, exact.entropy)));
          const gradScale = exact.grad.abs().max().item();
          expect(maxDiff(fusedIn.grad!, exact.grad)).toBeLessThan((dtype === 'bfloat16' ? 8e-3 : 1e-5) * gradScale); // bf16 grads round to 8 bits
        });
      });
    }
  }

  test('entropy with −inf logits (masked vocabulary): finite, exactly zero gradient there, equal to the unmasked row', async () => {
    await tidy(async () => {
      const row = [2, -1, 0.5, 3, -Infinity, 1, -Infinity];
      const logits = Tensor.from(row, [1, 7], { dtype: 'float64' });
      logits.requiresGrad = true;
      const entropy = await tokenEntropy(logits);
      await entropy.sum().backwardAsync();
      const finite = await tokenEntropy(Tensor.from(row.filter(Number.isFinite), [1, 5], { dtype: 'float64' }));
      expect(entropy.item()).toBeCloseTo(finite.item(), 12);
      const grad = Array.from(logits.grad!.toArray() as Float64Array);
      expect(grad[4]).toBe(0);
      expect(grad[6]).toBe(0);
      expect(grad.every(Number.isFinite)).toBe(true);
      // A one-hot row has zero entropy and zero gradient.
      const peaked = await tokenEntropy(Tensor.from([0, -Infinity, -Infinity], [1, 3], { dtype: 'float64' }));
      expect(peaked.item()).toBe(0);
    });
  });

  test('inplaceBackward gives the same gradient, written into the logits themselves', async () => {
    await tidy(async () => {
      const base = Tensor.randn([2, 5, 300], 8, { dtype: 'float32' });
      const index = Tensor.rand([2, 5, 4], 9, { dtype: 'float64' }).mul(300).to('int64');
      const upstream = Tensor.randn([2, 5, 4], 10, { dtype: 'float32' }).mul(Tensor.from([1, 1, 0, 1, 1], [5, 1]));
      const separate = base.clone();
      separate.requiresGrad = true;
      await (await tokenLogprobs(separate, index)).backwardAsync(upstream);
      const consumed = base.clone();
      consumed.requiresGrad = true;
      await (await tokenLogprobs(consumed, index, { inplaceBackward: true })).backwardAsync(upstream);
      expect(consumed.grad!.toNumbers()).toEqual(separate.grad!.toNumbers());
      expect(consumed.detach().toNumbers()).toEqual(separate.grad!.toNumbers()); // the logits now hold the gradient
    });
  });

  test('gradients from reused (cached) buffers equal those from fresh ones', async () => {
    // [2, 8, 20000] float32 = 1.28 MB: above the cache's 1 MiB floor. A reused buffer holds the previous gradient,
    // so this also checks that the backward overwrites every element.
    const gradient = (logits: Tensor, index: Tensor, upstream: Tensor) =>
      tidy(async () => {
        const input = logits.clone();
        input.requiresGrad = true;
        await (await tokenLogprobs(input, index)).backwardAsync(upstream);
        const grad = input.grad!.toNumbers();
        input.dispose(); // frees the gradient buffer: back into the cache
        return grad;
      });
    await tidy(async () => {
      const shape = [2, 8, 20000];
      const a = Tensor.randn(shape, 11, { dtype: 'float32' });
      const b = Tensor.randn(shape, 12, { dtype: 'float32' }).mul(4);
      const index = Tensor.rand([2, 8, 2], 13, { dtype: 'float64' }).mul(20000).to('int64');
      const upstream = Tensor.randn([2, 8, 2], 14, { dtype: 'float32' }).mul(Tensor.from([1, 0, 1, 1, 0, 1, 1, 1], [8, 1]));
      setBufferCacheLimit(0);
      const fresh = [await gradient(a, index, upstream), await gradient(b, index, upstream)];
      setBufferCacheLimit(1 << 30);
      const before = environmentReport().runtime.bufferCache;
      expect(before.cachedBytes).toBe(0);
      expect(await gradient(a, index, upstream)).toEqual(fresh[0]);
      expect(await gradient(b, index, upstream)).toEqual(fresh[1]); // written over a's gradient
      const after = environmentReport().runtime.bufferCache;
      expect(after.hits - before.hits).toBe(1);
      expect(after.cachedBytes).toBe(2 * 8 * 20000 * 4);
      releaseBufferCache();
      expect(environmentReport().runtime.bufferCache.cachedBytes).toBe(0);
      expect(() => setBufferCacheLimit(-1)).toThrow(/bytes must be >= 0/);
    });
    setBufferCacheLimit(4096 * 2 ** 20);
  });

  test('temperature divides the logits', async () => {
    await tidy(async () => {
      const logits = Tensor.randn([2, 3, 50], 1, { dtype: 'float64' });
      const index = Tensor.from(new BigInt64Array(6).fill(7n), [2, 3, 1]);
      const fused = await tokenLogprobs(logits, index, { temperature: 0.7 });
      const naive = logits.div(0.7).logSoftmax(-1).gather(-1, index);
      expect(fused.sub(naive).abs().max().item()).toBeLessThan(1e-12);
    });
  });
});

describe('masking and candidate sets', () => {
  test('masked positions get exactly zero gradient', async () => {
    await tidy(async () => {
      const logits = Tensor.randn([3, 6, 11], 4, { dtype: 'float32', requiresGrad: true });
      const mask = responseMask([3, 0, 2], 6, [1, 0, 3]).to('float32');
      const masked = mask.toArray() as Float32Array;
      // Row 1 has no response tokens but the batch does.
      const out = await ipvrmOffline({
        logits,
        refLogits: Tensor.randn([3, 6, 11], 5, { dtype: 'float32' }),
        tokens: randomTokens([3, 6], 11, 6),
        mask,
        labels: Tensor.from([1, 0, 0], undefined, { dtype: 'float32' }),
        beta: 10,
        margin: 5,
      });
      await out.loss.backwardAsync();
      const grad = logits.grad!.toArray() as Float32Array;
      for (let p = 0; p < 18; p++) {
        const row = grad.subarray(p * 11, (p + 1) * 11);
        if (masked[p] === 0) expect(Array.from(row).every((g) => g === 0)).toBe(true);
        else expect(Array.from(row).some((g) => g !== 0)).toBe(true);
      }
    });
  });

  test('float32 candidate sets equal those computed from the same logits in float64', async () => {
    await tidy(async () => {
      const [B, T, V] = [8, 24, 64];
      // Peaked distributions so that many tokens sit around P_min = 0.1.
      const logits32 = Tensor.randn([B, T, V], 77, { dtype: 'float32' }).mul(2.5);
      const tokens = randomTokens([B, T], V, 78);
      const mask = responseMask(
        Array.from({ length: B }, (_, b) => 10 + b),
        T,
      ).to('float32');
      for (const conventions of ['reference', 'paper'] as const) {
        for (const topP of [1, 0.8]) {
          const a = await distrlCandidates({ oldLogits: logits32, tokens, mask, conventions, topP });
          const b = await distrlCandidates({ oldLogits: logits32.to('float64'), tokens, mask, conventions, topP });
          expect(a.candidateIndices.toNested()).toEqual(b.candidateIndices.toNested());
          expect(a.candidateMask.toNested()).toEqual(b.candidateMask.toNested());
        }
      }
    });
  });

  test('float32 log-ratios are rounded once: far below one ulp of the log-probs themselves', async () => {
    await tidy(async () => {
      // Log-probs of −10 to −30 (float32 ulp 1e-6 to 2e-6) whose ratio is ~0.05: rounding each log-prob to float32
      // before the difference errs by ~1e-6 per token, which β·Σ_t multiplies in the sequence-level losses. (A short
      // vocabulary keeps the float32 Σexp's own rounding out of the comparison.)
      const [B, T, V] = [4, 32, 64];
      const logits32 = Tensor.randn([B, T, V], 91, { dtype: 'float32' }).mul(6);
      const ref32 = logits32.add(Tensor.randn([B, T, V], 92, { dtype: 'float32' }).mul(0.05));
      const tokens = randomTokens([B, T], V, 93);
      const mask = responseMask([32, 30, 20, 9], T);
      const labels = Tensor.from([1, 0, 1, 0], [B], { dtype: 'float64' });
      const run = (dtype: 'float32' | 'float64') =>
        ipvrmOffline({
          logits: logits32.to(dtype),
          refLogits: ref32.to(dtype),
          tokens,
          mask: mask.to(dtype),
          labels: labels.to(dtype),
          beta: 10,
          margin: 5,
        });
      const [single, double] = [await run('float32'), await run('float64')];
      const errorOf = (ratio: Tensor) => ratio.to('float64').sub(double.logRatio).mul(mask).abs().max().item() as number;
      const roundedFirst = single.policyLogprobs!.sub(single.refLogprobs!); // both float32 log-probs, then their difference
      // Measured: 2.6e-7 (the float32 exp's ~2 ulp on the largest terms of each Σexp) against 1.6e-6.
      expect(errorOf(single.logRatio)).toBeLessThan(4e-7);
      expect(errorOf(single.logRatio)).toBeLessThan(errorOf(roundedFirst) / 4);
    });
  });

  test('top-K with ties, very negative logits and long rows: the vectorised float32 scan equals the float64 scalar one', async () => {
    await tidy(async () => {
      // Logits on a coarse integer grid, so that many tokens tie for the top slots; 30% of the logits pushed to -1e30;
      // V = 1003 leaves a tail after the vector chunks.
      const [B, T, V] = [4, 6, 1003];
      const grid = Tensor.rand([B, T, V], 91, { dtype: 'float64' }).mul(4).to('int64').to('float32');
      const blocked = Tensor.rand([B, T, V], 92, { dtype: 'float64' }).lt(0.3);
      const logits32 = Tensor.where(blocked, Tensor.full([B, T, V], -1e30, { dtype: 'float32' }), grid);
      const tokens = randomTokens([B, T], V, 93);
      const mask = Tensor.ones([B, T]);
      const a = await distrlCandidates({ oldLogits: logits32, tokens, mask, k: 9, minP: 1e-6 });
      const b = await distrlCandidates({ oldLogits: logits32.to('float64'), tokens, mask, k: 9, minP: 1e-6 });
      expect(a.candidateIndices.toNested()).toEqual(b.candidateIndices.toNested());
      expect(a.candidateMask.toNested()).toEqual(b.candidateMask.toNested());
    });
  });

  test("DLW weights: the reference rescales a group's to Σw = n, the paper keeps 1 − μ and μ (§3.3)", async () => {
    await tidy(async () => {
      const [B, T, V] = [8, 3, 5];
      const inputs = {
        logits: Tensor.randn([B, T, V], 3, { dtype: 'float64' }),
        refLogits: Tensor.randn([B, T, V], 4, { dtype: 'float64' }),
        tokens: randomTokens([B, T], V, 5),
        mask: responseMask([3, 3, 3, 3, 3, 3, 3, 3], T),
        // Groups of 4: one correct of four (μ = 1/4), then three of four (μ = 3/4).
        acc: Tensor.from([1, 0, 0, 0, 1, 1, 1, 0], undefined, { dtype: 'float64' }),
        groupSize: 4,
        margin: 1,
      };
      const reference = await ipvrmOnline(inputs);
      const paper = await ipvrmOnline({ ...inputs, conventions: 'paper' });
      const closeTo = (t: Tensor, expected: number[]) => (t.toArray() as Float64Array).forEach((w, i) => expect(w).toBeCloseTo(expected[i], 12));
      // μ = 1/4: the correct row 1 − μ = 3/4, each wrong one μ = 1/4; rescaled by n/Σw = 4/1.5.
      closeTo(paper.weights, [0.75, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.75]);
      closeTo(reference.weights, [2, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2]);
      // The margins (ADB) and the per-sequence losses do not depend on the convention; only the weighting does.
      expect(paper.margins.toArray()).toEqual(reference.margins.toArray());
      const perSeq = reference.lossPerSeq.toArray() as Float64Array;
      const w = paper.weights.toArray() as Float64Array;
      expect(paper.loss.item()).toBeCloseTo(perSeq.reduce((a, l, i) => a + l * w[i], 0) / B, 12);
      await expect(ipvrmOnline({ ...inputs, conventions: 'paperish' as 'paper' })).rejects.toThrow(/conventions must be reference or paper/);
    });
  });

  test('fractional outcomes enter the online losses as the reference writes them: s = 2·acc − 1, BCE against acc, 0.5 pairs with nothing', async () => {
    await tidy(async () => {
      const [B, T] = [4, 3];
      const ratios = [
        [0.3, -0.2, 0.5],
        [-0.4, 0.1, 0.2],
        [0.2, 0.2, -0.6],
        [0.1, -0.3, 0.4],
      ];
      const lengths = [3, 2, 3, 1];
      const acc = [0.8, 0.5, 0.0, 1.0];
      const f64 = { dtype: 'float64' as const };
      const inputs = {
        logRatio: Tensor.from(ratios, undefined, f64),
        mask: responseMask(lengths, T),
        acc: Tensor.from(acc, undefined, f64),
        groupSize: 4,
        useAdb: false,
        useDlw: false,
        beta: 2,
        margin: 0.5,
      };
      const softplus = (x: number) => Math.log1p(Math.exp(x));
      const sums = ratios.map((row, b) => row.slice(0, lengths[b]).reduce((a, x) => a + x, 0));
      // IPVRM: per row the token mean of softplus(m − β·s·v̄_t), v̄_t the prefix mean of the log ratios.
      const ipvrm = ratios.map((row, b) => {
        const s = 2 * acc[b] - 1;
        let sum = 0;
        let total = 0;
        for (let t = 0; t < lengths[b]; t++) total += softplus(0.5 - 2 * s * ((sum += row[t]) / (t + 1)));
        return total / lengths[b];
      });
      expect((await ipvrmOnline(inputs)).loss.item()).toBeCloseTo(ipvrm.reduce((a, x) => a + x, 0) / B, 12);
      // Implicit PRM: BCE-with-logits of z = β·Σ lr against the outcome itself; its ADB form −logσ(z·s − m).
      const bce = sums.map((sum, b) => softplus(2 * sum) - acc[b] * 2 * sum);
      expect((await implicitPrmOnline({ ...inputs, form: 'bce' })).loss.item()).toBeCloseTo(bce.reduce((a, x) => a + x, 0) / B, 12);
      const adb = sums.map((sum, b) => softplus(-(2 * sum * (2 * acc[b] - 1) - 0.5)));
      expect((await implicitPrmOnline({ ...inputs, form: 'adb' })).loss.item()).toBeCloseTo(adb.reduce((a, x) => a + x, 0) / B, 12);
      // DPO: correct above 0.5 (rows 0, 3), incorrect below (row 2): one pair, the first of each.
      const dpo = await dpoOnline({ logRatio: inputs.logRatio, mask: inputs.mask, acc: inputs.acc, groupSize: 4, beta: 2 });
      expect([...(dpo.chosenIdx.toArray() as BigInt64Array)].map(Number)).toEqual([0]);
      expect([...(dpo.rejectedIdx.toArray() as BigInt64Array)].map(Number)).toEqual([2]);
      expect(dpo.loss.item()).toBeCloseTo(softplus(-2 * (sums[0] - sums[2])), 12);
      expect(outcomePairCount(acc, 4)).toBe(1);
    });
  });

  test('the dual clip caps a negative advantage at c·|A| only when asked (dualClip false: the plain clipped surrogate)', async () => {
    await tidy(async () => {
      const f64 = { dtype: 'float64' as const };
      // One token, ratio e² ≈ 7.39 on a negative advantage: max(−Aρ, −A·clip(ρ)) = 7.39; with the dual clip, min(3, ·) = 3.
      const one = (v: number) => Tensor.from([[v]], undefined, f64);
      const inputs = {
        logProb: one(2),
        oldLogProb: one(0),
        policyTopkLogprobs: Tensor.from([[[2]]], undefined, f64),
        oldTopkLogprobs: Tensor.from([[[0]]], undefined, f64),
        candidateMask: Tensor.from([[[1]]], undefined, f64),
        advantages: one(-1),
        scaledCandidateTd: Tensor.from([[[0]]], undefined, f64),
        mask: one(1),
      };
      const tokenMean = (x: number) => x / (1 + 1e-8); // verl's masked mean: Σ l·m / (Σ m + 1e-8)
      expect((await distrlLoss(inputs)).pgLoss.item()).toBeCloseTo(tokenMean(3), 12);
      expect((await distrlLoss({ ...inputs, dualClip: false })).pgLoss.item()).toBeCloseTo(tokenMean(Math.exp(2)), 12);
    });
  });

  test('paper candidates are exactly the tokens with π_old ≥ P_min', async () => {
    await tidy(async () => {
      const [B, T, V] = [2, 5, 30];
      const logits = Tensor.randn([B, T, V], 5, { dtype: 'float64' }).mul(2);
      const tokens = randomTokens([B, T], V, 6);
      const mask = responseMask([5, 3], T);
      const c = await distrlCandidates({ oldLogits: logits, tokens, mask, minP: 0.1, conventions: 'paper' });
      const probs = logits.softmax(-1).toNested() as number[][][];
      const ids = c.candidateIndices.toNested() as number[][][];
      const keep = c.candidateMask.toNested() as number[][][];
      const maskRows = mask.toNested() as number[][];
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const expected = maskRows[b][t]
            ? probs[b][t]
                .map((p, v) => (p >= 0.1 ? v : -1))
                .filter((v) => v >= 0)
                .sort((x, y) => x - y)
            : [];
          const got = ids[b][t].filter((_, k) => keep[b][t][k]).sort((x, y) => x - y);
          expect(got).toEqual(expected);
        }
      }
    });
  });
});

describe('bad input', () => {
  const base = () => ({
    logits: Tensor.randn([2, 3, 5], 1),
    refLogits: Tensor.randn([2, 3, 5], 2),
    tokens: Tensor.from(new BigInt64Array([0n, 1n, 2n, 3n, 4n, 0n]), [2, 3]),
    mask: Tensor.ones([2, 3]),
    labels: Tensor.from([1, 0]),
  });
  const rejects = async (promise: Promise<unknown>, message: RegExp) => {
    await expect(promise).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringMatching(message) });
  };

  test('shape and dtype mismatches name the argument', async () => {
    await tidy(async () => {
      await rejects(ipvrmOffline({ ...base(), refLogits: Tensor.randn([2, 3, 6], 3) }), /refLogits has shape \[2, 3, 6\]/);
      await rejects(ipvrmOffline({ ...base(), mask: Tensor.ones([2, 4]) }), /mask has shape \[2, 4\]/);
      await rejects(ipvrmOffline({ ...base(), tokens: Tensor.zeros([2, 3]) }), /tokens must be an int64 or int32 tensor/);
      await rejects(ipvrmOffline({ ...base(), logits: Tensor.zeros([2, 3, 5], { dtype: 'int32' }) }), /logits must be a floating tensor/);
      await rejects(ipvrmOffline({ ...base(), labels: Tensor.from([1, 0, 1]) }), /labels must be \[B\] with B=2/);
      await rejects(ipvrmOffline({ ...base(), tokens: Tensor.from(new BigInt64Array([0n, 1n, 2n, 3n, 9n, 0n]), [2, 3]) }), /out of range: found 9/);
      const { labels: _unused, ...noLabels } = base();
      await rejects(
        dpoRm({
          ...noLabels,
          logits: Tensor.randn([3, 3, 5], 1),
          refLogits: Tensor.randn([3, 3, 5], 2),
          tokens: Tensor.zeros([3, 3], { dtype: 'int64' }),
          mask: Tensor.ones([3, 3]),
        }),
        /B must be even/,
      );
    });
  });

  test('an empty mask, NaN logits, unknown options', async () => {
    await tidy(async () => {
      await rejects(ipvrmOffline({ ...base(), mask: Tensor.zeros([2, 3]) }), /empty response mask/);
      const nan = Tensor.randn([2, 3, 5], 1).div(Tensor.zeros([2, 3, 5]).mul(Tensor.ones([2, 3, 5]))); // 0/0 → NaN
      await rejects(ipvrmOffline({ ...base(), logits: nan }), /NaN or Inf/);
      await rejects(ipvrmOffline({ ...base(), weighting: 'sideways' as 'early' }), /weighting must be/);
      // A row without response tokens: the reference's token mean skips it, the paper's per-sequence means are 0/0.
      const oneEmpty = Tensor.from([
        [1, 1, 0],
        [0, 0, 0],
      ]);
      expect(Number.isFinite((await ipvrmOffline({ ...base(), mask: oneEmpty })).loss.item())).toBe(true);
      for (const weighting of ['uniform', 'late', 'early'] as const) {
        await rejects(
          ipvrmOffline({ ...base(), mask: oneEmpty, weighting }),
          new RegExp(`weightings \\(${weighting}\\) need a response token in every row; row 1 has none`),
        );
      }
      await rejects(prefixValues({ ...base(), betta: 1 } as never), /unknown input 'betta'/);
      await rejects(ipvrmOffline({ ...base(), refLogits: undefined }), /give refLogits or refLogprobs/);
      await rejects(tokenEntropy(Tensor.zeros([2, 5], { dtype: 'int64' })), /logits must be a floating tensor/);
      await rejects(tokenEntropy(Tensor.randn([5], 1)), /logits must have shape \[\.\.\., V\]/);
      await rejects(tokenEntropy(Tensor.randn([2, 5], 1), { temperature: 0 }), /temperature must be > 0/);
    });
  });

  test('non-finite settings, labels outside [0, 1] and NaN advantages are refused, named', async () => {
    await tidy(async () => {
      await rejects(ipvrmOffline({ ...base(), beta: NaN }), /'beta' must be a finite number/);
      await rejects(ipvrmOffline({ ...base(), margin: Infinity }), /'margin' must be a finite number/);
      await rejects(ipvrmOffline({ ...base(), labels: Tensor.from([2, 0]) }), /labels must lie in \[0, 1\]/);
      await rejects(ipvrmOffline({ ...base(), labels: Tensor.from([-1, 0]) }), /labels must lie in \[0, 1\]/);
      const { refLogits: oldLogits, logits: newLogits, tokens, mask } = base();
      const candidates = await distrlCandidates({ oldLogits, tokens, mask, k: 2 });
      const inputs = {
        newLogits,
        ...candidates,
        advantages: Tensor.zeros([2, 3]),
        scaledCandidateTd: Tensor.zeros(candidates.oldTopkLogprobs.shape),
        mask,
      };
      await expect(distrlLoss(inputs)).resolves.toBeDefined();
      const nanAt = (shape: number[], index: number) =>
        Tensor.from(
          Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => (i === index ? NaN : 0)),
          shape,
        );
      await rejects(distrlLoss({ ...inputs, advantages: nanAt([2, 3], 4) }), /advantages contain NaN or Inf \(first at position \[1, 1\]\)/);
      await rejects(distrlLoss({ ...inputs, scaledCandidateTd: nanAt(candidates.oldTopkLogprobs.shape, 0) }), /scaledCandidateTd contain NaN or Inf/);
      await rejects(distrlLoss({ ...inputs, clipRatioHigh: NaN }), /'clipRatioHigh' must be a finite number/);
    });
  });

  test('P_min outside (0, 1), K > V, top-p outside (0, 1]', async () => {
    await tidy(async () => {
      const { refLogits: oldLogits, tokens, mask } = base();
      for (const minP of [0, -0.1, 1, 1.5]) await rejects(distrlCandidates({ oldLogits, tokens, mask, minP }), /minP \(P_min\) must be in \(0, 1\)/);
      await rejects(distrlCandidates({ oldLogits, tokens, mask, k: 6 }), /K must be in \[1, V=5\]/);
      await rejects(distrlCandidates({ oldLogits, tokens, mask, topP: 0 }), /topP must be in \(0, 1\]/);
    });
  });

  test('a running fused op stops at its next chunk when aborted', async () => {
    const logits = Tensor.ones([4096, 32000]);
    const index = Tensor.zeros([4096, 1], { dtype: 'int64' });
    const controller = new AbortController();
    const running = tokenLogprobs(logits, index, { signal: controller.signal });
    setTimeout(() => controller.abort(), 5);
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    logits.dispose();
    index.dispose();
  });
});
