// The three registries of an RL run — advantage estimators, online reward models, policy losses — beyond the golden
// checks of their math (test/golden/families): lookups and their errors, the entries against hand-written formulas and
// against the objectives they wrap, in float64.
import { getAdvantage, listAdvantages } from '../lib/algorithms/advantages/index.js';
import { getPolicyLoss, listPolicyLosses } from '../lib/algorithms/policy-losses/index.js';
import {
  getRewardModel,
  implicitScore,
  listRewardModels,
  outcomePairCount,
  type RewardModelSettings,
} from '../lib/algorithms/reward-models/index.js';
import {
  distrlCandidates,
  distrlLoss,
  distrlTd,
  dpoOnline,
  implicitPrmCe,
  implicitPrmOnline,
  ipvrmOnline,
  tokenLogprobs,
} from '../lib/ops/objectives.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const f64 = { dtype: 'float64' as const };
const settings: RewardModelSettings = {
  beta: 2,
  margin: 0.5,
  useAdb: true,
  useDlw: true,
  uniformGroups: 'skip',
  implicitPrmLoss: 'online',
  dpoReduction: 'mean',
  conventions: 'reference',
};

test('lookups name what is registered', () => {
  expect(listAdvantages()).toEqual(['distrl', 'drgrpo', 'grpo', 'grpo-prm', 'prime', 'prime-original', 'rloo']);
  expect(listRewardModels()).toEqual(['dpo-rm', 'implicit-prm', 'ipvrm']);
  expect(listPolicyLosses()).toEqual(['dist-ppo', 'tok-ppo']);
  expect(() => getAdvantage('gae')).toThrow(/unknown advantage estimator 'gae' \(registered: distrl, drgrpo/);
  expect(() => getRewardModel('q-rm')).toThrow(/unknown reward model 'q-rm' \(registered: dpo-rm, implicit-prm, ipvrm\)/);
  expect(() => getPolicyLoss('gspo')).toThrow(/unknown policy loss 'gspo' \(registered: dist-ppo, tok-ppo\)/);
  expect(getAdvantage('distrl')).toMatchObject({ needs: 'candidate-td', candidates: true });
  expect(getAdvantage('prime')).toMatchObject({ needs: 'token-rewards', candidates: false });
  expect(getAdvantage('rloo')).toMatchObject({ needs: 'outcome', candidates: false });
});

test('estimators that read a reward model say which field is missing', () => {
  const base = { acc: [1, 0], mask: [[1], [1]], n: 2 };
  expect(() => getAdvantage('distrl').estimate(base)).toThrow(/'distrl' needs candidateTd/);
  expect(() => getAdvantage('prime').estimate(base)).toThrow(/'prime' needs tokenLogRatio/);
});

test('rloo: each score minus the mean of the others in its group, on every response token', () => {
  const acc = [1, 0, 0, 1, 0.5, 1];
  const mask = [
    [1, 1, 0],
    [1, 0, 0],
    [1, 1, 1],
    [1, 1, 0],
    [1, 0, 0],
    [1, 1, 1],
  ];
  const { advantages } = getAdvantage('rloo').estimate({ acc, mask, n: 3 });
  const expected = acc.map((r, b) => {
    const group = Math.floor(b / 3) * 3;
    const others = [0, 1, 2].map((i) => group + i).filter((i) => i !== b);
    const baseline = others.reduce((s, i) => s + acc[i], 0) / others.length;
    return mask[b].map((m) => (r - baseline) * m);
  });
  advantages.flat().forEach((v, i) => expect(v).toBeCloseTo(expected.flat()[i], 12));
  expect(() => getAdvantage('rloo').estimate({ acc, mask, n: 1 })).toThrow(/at least 2 samples/);
});

/** A small batch in float64: 2 groups of 3, policy and reference logits, mixed and uniform outcomes. */
function batch(acc: number[]) {
  const B = acc.length;
  const [T, V] = [5, 7];
  const logits = Tensor.randn([B, T, V], 11, f64);
  const refLogits = Tensor.randn([B, T, V], 12, f64);
  const tokens = Tensor.rand([B, T], 13, f64).mul(V).to('int64');
  const lengths = [5, 3, 4, 2, 5, 1];
  const mask = Tensor.from(
    lengths.slice(0, B).map((L) => Array.from({ length: T }, (_, t) => (t < L ? 1 : 0))),
    undefined,
    f64,
  );
  return { logits, refLogits, tokens, mask, acc: Tensor.from(acc, undefined, f64) };
}

async function refLogprobsOf(b: ReturnType<typeof batch>): Promise<Tensor> {
  return (await tokenLogprobs(b.refLogits, b.tokens.unsqueeze(-1))).squeeze(-1).mul(b.mask);
}

test('reward models: each update is its objective divided over the micro-batches of its step', async () => {
  await tidy(async () => {
    const accs = [1, 0, 1, 0, 0, 0];
    const b = batch(accs);
    const refLogprobs = await refLogprobsOf(b);
    const common = { logits: b.logits, tokens: b.tokens, refLogprobs, mask: b.mask, acc: b.acc, groupSize: 3, step: { microBatches: 2, acc: accs } };
    const inputs = { logits: b.logits, tokens: b.tokens, refLogprobs, mask: b.mask, beta: settings.beta };
    const ipvrm = await getRewardModel('ipvrm').update(common, settings);
    const direct = await ipvrmOnline({ ...inputs, acc: b.acc, groupSize: 3, margin: 0.5, useAdb: true, useDlw: true });
    expect(ipvrm.item()).toBeCloseTo(direct.loss.item() / 2, 14);
    const online = await getRewardModel('implicit-prm').update(common, settings);
    const onlineDirect = await implicitPrmOnline({ ...inputs, acc: b.acc, groupSize: 3, margin: 0.5, useAdb: true, useDlw: true, form: 'adb' });
    expect(online.item()).toBeCloseTo(onlineDirect.loss.item() / 2, 14);
    const ce = await getRewardModel('implicit-prm').update(common, { ...settings, implicitPrmLoss: 'ce' });
    expect(ce.item()).toBeCloseTo((await implicitPrmCe({ ...inputs, labels: b.acc })).loss.item() / 2, 14);
  });
});

test('uniform groups: weight 0 as the reference, or weight 1 and margin m when they train too', async () => {
  await tidy(async () => {
    const accs = [1, 0, 1, 0, 0, 0]; // group 2 is all wrong
    const b = batch(accs);
    const refLogprobs = await refLogprobsOf(b);
    const inputs = { logits: b.logits, tokens: b.tokens, refLogprobs, mask: b.mask, acc: b.acc, groupSize: 3, beta: 2, margin: 0.5 };
    const skip = await ipvrmOnline(inputs);
    const train = await ipvrmOnline({ ...inputs, trainUniformGroups: true });
    expect(skip.weights.toNumbers().slice(3)).toEqual([0, 0, 0]);
    expect(train.weights.toNumbers().slice(3)).toEqual([1, 1, 1]);
    expect(train.margins.toNumbers().slice(3)).toEqual([0.5, 0.5, 0.5]);
    expect(train.weights.toNumbers().slice(0, 3)).toEqual(skip.weights.toNumbers().slice(0, 3)); // mixed groups unchanged
    // The loss is the mean of w · per-sequence loss over every row.
    const perSeq = train.lossPerSeq.toNumbers();
    const w = train.weights.toNumbers();
    expect(train.loss.item()).toBeCloseTo(perSeq.reduce((a, l, i) => a + l * w[i], 0) / 6, 12);
    const step = { microBatches: 1, acc: accs };
    const entry = await getRewardModel('ipvrm').update({ ...inputs, step }, { ...settings, margin: 0.5, uniformGroups: 'train' });
    expect(entry.item()).toBeCloseTo(train.loss.item(), 14);
    const iprm = await implicitPrmOnline({ ...inputs, trainUniformGroups: true, form: 'adb' });
    expect(iprm.weights.toNumbers().slice(3)).toEqual([1, 1, 1]);
  });
});

test('distrl under the paper conventions: candidate advantages TD / (σ_V + 1e-6), σ_V the std of the prefix values', () => {
  const mask = [
    [1, 1, 1, 0],
    [1, 1, 0, 0],
  ];
  const candidateTd = [
    [
      [0.4, 0.1],
      [-0.2, 0.3],
      [0.5, -0.1],
      [9, 9],
    ],
    [
      [0.3, 0.2],
      [0.1, -0.4],
      [9, 9],
      [9, 9],
    ],
  ];
  const out = getAdvantage('distrl').estimate({ acc: [1, 0], mask, n: 2, candidateTd, conventions: 'paper' });
  const V = [0.4, 0.2, 0.7, 0.3, 0.4]; // Σ_{i≤t} TD_i (slot 0) at the valid positions
  const mean = V.reduce((a, v) => a + v, 0) / V.length;
  const std = Math.sqrt(V.reduce((a, v) => a + (v - mean) ** 2, 0) / V.length);
  out.candidateAdvantages!.forEach((row, b) =>
    row.forEach((cell, t) => cell.forEach((v, k) => expect(v).toBeCloseTo(candidateTd[b][t][k] / (std + 1e-6), 12))),
  );
});

test('DPO-RM: the first correct responses against the first incorrect ones per group, mean over the step or sum', async () => {
  expect(outcomePairCount([1, 0, 1, 0, 0, 0], 3)).toBe(1); // group 1: 2 correct, 1 incorrect → 1 pair; group 2: none
  expect(outcomePairCount([1, 1, 0, 0, 1, 0], 3)).toBe(2);
  await tidy(async () => {
    const accs = [1, 1, 0, 0, 1, 0];
    const b = batch(accs);
    const refLogprobs = await refLogprobsOf(b);
    const common = { logits: b.logits, tokens: b.tokens, refLogprobs, mask: b.mask, acc: b.acc, groupSize: 3 };
    // Hand-written: z_b = β Σ_t (log π − log π_ref) m; pairs (0, 2) and (4, 3).
    const policy = (await tokenLogprobs(b.logits, b.tokens.unsqueeze(-1))).squeeze(-1).mul(b.mask);
    const z = policy.sub(refLogprobs).sum([1]).toNumbers();
    const pairLoss = (c: number, r: number) => Math.log1p(Math.exp(-settings.beta * (z[c] - z[r])));
    const sum = pairLoss(0, 2) + pairLoss(4, 3);
    // A step whose other micro-batch holds 1 more pair (3 in all): this micro-batch's share of the mean is its sum / 3.
    const step = { microBatches: 2, acc: [...accs, 1, 0, 1, 0, 0, 0] };
    expect(outcomePairCount(step.acc, 3)).toBe(3);
    const dpo = getRewardModel('dpo-rm');
    expect((await dpo.update({ ...common, step }, settings)).item()).toBeCloseTo(sum / 3, 12);
    expect((await dpo.update({ ...common, step }, { ...settings, dpoReduction: 'sum' })).item()).toBeCloseTo(sum, 12);
    expect((await dpoOnline({ ...common, beta: settings.beta })).lossSum.item()).toBeCloseTo(sum, 12);
    // Its gradient reaches the logits.
    const logits = b.logits.detach();
    logits.requiresGrad = true;
    await (await dpo.update({ ...common, logits, step }, settings)).backwardAsync();
    expect(logits.grad!.abs().sum().item()).toBeGreaterThan(0);
    // A step with no (correct, incorrect) pair has nothing to learn: the loop skips it, a direct call is refused.
    const uniform = [1, 1, 1, 0, 0, 0];
    expect(dpo.learnsFrom!(uniform, 3)).toBe(false);
    expect(dpo.learnsFrom!(accs, 3)).toBe(true);
    await expect(dpo.update({ ...common, step: { microBatches: 1, acc: uniform } }, settings)).rejects.toThrow(/no \(correct, incorrect\) pair/);
  });
});

test('implicitScore: token log ratios at the sampled tokens, and the TD at the candidates against the reference', async () => {
  await tidy(async () => {
    const b = batch([1, 0, 1, 0, 0, 0]);
    const refLogprobs = await refLogprobsOf(b);
    const { tokenLogRatio } = await implicitScore({
      needs: 'token-rewards',
      rm: b.logits,
      tokens: b.tokens,
      mask: b.mask,
      beta: 2,
      temperature: 1,
      refLogprobs,
    });
    const policy = (await tokenLogprobs(b.logits, b.tokens.unsqueeze(-1))).squeeze(-1).mul(b.mask);
    expect(tokenLogRatio!.sub(policy.sub(refLogprobs)).abs().max().item()).toBe(0);
    const cand = await distrlCandidates({ oldLogits: b.refLogits, tokens: b.tokens, mask: b.mask, k: 3 });
    const input = {
      rm: b.logits,
      tokens: b.tokens,
      mask: b.mask,
      beta: 2,
      temperature: 1,
      candidateIndices: cand.candidateIndices,
      refTopkLogprobs: cand.oldTopkLogprobs,
    };
    const { candidateTd } = await implicitScore({ needs: 'candidate-td', ...input });
    const direct = await distrlTd({
      rmLogits: b.logits,
      candidateIndices: cand.candidateIndices,
      oldTopkLogprobs: cand.oldTopkLogprobs,
      mask: b.mask,
      beta: 2,
    });
    expect(candidateTd!.sub(direct.candidateTd).abs().max().item()).toBe(0);
    await expect(implicitScore({ needs: 'candidate-td', rm: b.logits, tokens: b.tokens, mask: b.mask, beta: 2, temperature: 1 })).rejects.toThrow(
      /candidateIndices/,
    );
  });
});

test('policy losses: Σ coef × term equals the fused pass with α, value and gradient', async () => {
  await tidy(async () => {
    const b = batch([1, 0, 1, 0, 0, 0]);
    const cand = await distrlCandidates({ oldLogits: b.refLogits, tokens: b.tokens, mask: b.mask, k: 3 });
    const advantages = Tensor.randn(b.mask.shape, 21, f64).mul(b.mask);
    const scaledCandidateTd = Tensor.randn(cand.oldTopkLogprobs.shape, 22, f64);
    const run = async (alpha: number, fromTerms: boolean) => {
      const newLogits = b.logits.add(Tensor.randn(b.logits.shape, 23, f64).mul(0.3)).detach();
      newLogits.requiresGrad = true;
      const out = await distrlLoss({ newLogits, ...cand, advantages, scaledCandidateTd, mask: b.mask, alpha: fromTerms ? 0 : alpha });
      const loss = fromTerms ? getPolicyLoss('tok-ppo').term(out).mul(1).add(getPolicyLoss('dist-ppo').term(out).mul(alpha)) : out.loss;
      await loss.backwardAsync();
      return { value: loss.item(), grad: newLogits.grad!.toNumbers() };
    };
    const fused = await run(0.3, false);
    const terms = await run(0.3, true);
    expect(terms.value).toBeCloseTo(fused.value, 13);
    terms.grad.forEach((g, i) => expect(Math.abs(g - fused.grad[i])).toBeLessThan(1e-13));
    expect(getPolicyLoss('dist-ppo').candidates && !getPolicyLoss('tok-ppo').candidates).toBe(true);
  });
});
