// Training primitives: AdamW against its closed form, gradient clipping, schedules, and a few steps of training that
// lower the loss of qwen3-tiny on a toy corpus (with gradient accumulation and activation checkpointing).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, clipGradNorm, constantSchedule, cosineSchedule, linearSchedule, loadModel, padBatch, type CausalLM } from '../lib/model/index.js';
import { Tensor, tidy } from '../lib/tensor/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';

test('AdamW state: save then load into a new optimizer continues exactly; a state for other parameters is refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-adamw-'));
  const make = () =>
    new Map([
      ['w', Tensor.from([1, -2, 3], [3], { requiresGrad: true })],
      ['never', Tensor.from([5], [1], { requiresGrad: true })],
    ]);
  const stepOnce = async (optimizer: AdamW, w: Tensor, scale: number) => {
    await optimizer.zeroGrad();
    await tidy(() => w.mul(w).mul(scale).sum().backwardAsync());
    await optimizer.step({ lr: 0.05 });
  };
  try {
    const [a, b] = [make(), make()];
    const first = new AdamW(a, { lr: 0.1, weightDecay: 0.01 });
    for (const scale of [1, 2, 3]) await stepOnce(first, a.get('w')!, scale);
    await first.save(join(dir, 'adamw.safetensors'));
    // The second optimizer's parameters take the first's values (as a checkpoint's weights would), then its state.
    b.get('w')!.dispose();
    b.set('w', Tensor.from(a.get('w')!.toNumbers(), [3], { requiresGrad: true }));
    const second = new AdamW(b, { lr: 0.1, weightDecay: 0.01 });
    await second.load(join(dir, 'adamw.safetensors'));
    expect(second.steps).toBe(3);
    for (const scale of [4, 5]) {
      await stepOnce(first, a.get('w')!, scale);
      await stepOnce(second, b.get('w')!, scale);
    }
    expect(b.get('w')!.toNumbers()).toEqual(a.get('w')!.toNumbers());
    expect(b.get('never')!.toNumbers()).toEqual([5]);
    const other = new AdamW([Tensor.from([1, 2], [2], { requiresGrad: true })], { lr: 0.1 });
    await expect(other.load(join(dir, 'adamw.safetensors'))).rejects.toThrow(/not this optimizer's state/);
    const reshaped = new AdamW(
      new Map([
        ['w', Tensor.from([1, 2], [2])],
        ['never', Tensor.from([5], [1])],
      ]),
      { lr: 0.1 },
    );
    await expect(reshaped.load(join(dir, 'adamw.safetensors'))).rejects.toThrow(/shape/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('AdamW follows the torch.optim.AdamW update', async () => {
  const p = Tensor.from([1], [1], { requiresGrad: true });
  const untouched = Tensor.from([2], [1], { requiresGrad: true });
  const optimizer = new AdamW([p, untouched], { lr: 0.1, weightDecay: 0.01 });
  // With a constant gradient the bias-corrected moments are g and g², so each step moves by lr · g / |g| = lr.
  let expected = 1;
  for (let step = 0; step < 3; step++) {
    await optimizer.zeroGrad();
    await tidy(() => p.mul(0.5).sum().backwardAsync());
    await optimizer.step();
    expected = expected * (1 - 0.1 * 0.01) - 0.1;
    expect(p.item()).toBeCloseTo(expected, 6);
  }
  expect(untouched.item()).toBe(2); // no gradient, no update (not even weight decay)
  expect(optimizer.steps).toBe(3);
  await optimizer.step({ lr: 0 });
  expect(p.item()).toBeCloseTo(expected, 6);
  p.dispose();
  untouched.dispose();
});

test('clipGradNorm scales gradients to the norm and returns the norm before', async () => {
  const p = Tensor.from([3, 4], [2], { requiresGrad: true });
  await tidy(async () => {
    await p.mul(p).mul(0.5).sum().backwardAsync(); // grad = p
    expect(await clipGradNorm([p], 10)).toBeCloseTo(5, 5);
    expect(p.grad!.toNumbers()).toEqual([3, 4]);
    expect(await clipGradNorm([p], 1)).toBeCloseTo(5, 5);
    const [a, b] = p.grad!.toNumbers();
    expect(a).toBeCloseTo(0.6, 5);
    expect(b).toBeCloseTo(0.8, 5);
  });
  await expect(clipGradNorm([p], 0)).rejects.toThrow(/maxNorm must be positive/);
  p.dispose();
});

test('learning-rate schedules', () => {
  const constant = constantSchedule(1, { warmupSteps: 4 });
  expect([0, 1, 3, 4, 100].map(constant)).toEqual([0.25, 0.5, 1, 1, 1]);
  const linear = linearSchedule(1, { warmupSteps: 2, totalSteps: 12, minLr: 0.1 });
  expect([0, 1, 2, 7, 12, 20].map(linear).map((x) => +x.toFixed(6))).toEqual([0.5, 1, 1, 0.55, 0.1, 0.1]);
  const cosine = cosineSchedule(1, { totalSteps: 10 });
  expect([0, 5, 10, 11].map(cosine).map((x) => +x.toFixed(6))).toEqual([1, 0.5, 0, 0]);
});

describe.each(['qwen3-tiny', 'llama-tiny'])('training %s', (name) => {
  const dir = join(process.cwd(), 'fixtures/models', name);
  let model: CausalLM;
  let tmp: string;
  beforeAll(async () => {
    model = await loadModel(dir);
    tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-train-'));
  });
  afterAll(async () => {
    model.dispose();
    await rm(tmp, { recursive: true, force: true });
  });

  test('the loss on a toy corpus falls; the trained model saves and reloads', async () => {
    const tokenizer = await loadTokenizer(dir);
    const corpus = ['12+34=46', '5*6=30', '7-2=5', '10+10=20', '3*3=9', '8-8=0', '2+2=4', '9*1=9'].map((text) =>
      tokenizer.encodeChat([
        { role: 'user', content: text.split('=')[0] },
        { role: 'assistant', content: text.split('=')[1] },
      ]),
    );
    const scored = corpus.reduce((sum, tokens) => sum + tokens.length - 1, 0);
    const parameters = model.parameters();
    for (const parameter of parameters.values()) parameter.requiresGrad = true;
    const optimizer = new AdamW(parameters, { lr: 1e-2, weightDecay: 0 });
    const schedule = cosineSchedule(1e-2, { warmupSteps: 2, totalSteps: 20, minLr: 1e-3 });
    const microBatches = [corpus.slice(0, 4), corpus.slice(4)];

    /** Mean negative log-likelihood of the corpus; with `train`, backpropagates it over two micro-batches. */
    const loss = (train: boolean) =>
      tidy(async () => {
        let total = 0;
        for (const batch of microBatches) {
          const { inputIds, attentionMask } = padBatch(batch);
          const logprobs = await model.tokenLogprobs(inputIds, attentionMask, { checkpoint: train });
          const batchLoss = logprobs.sum().mul(-1 / scored); // summing the micro-batch losses gives the corpus mean
          if (train) await batchLoss.backwardAsync();
          total += batchLoss.item();
        }
        return total;
      });

    const losses: number[] = [];
    for (let step = 0; step < 20; step++) {
      await optimizer.zeroGrad();
      losses.push(await loss(true));
      expect(Number.isFinite(await clipGradNorm(parameters, 1))).toBe(true);
      await optimizer.step({ lr: schedule(step) });
    }
    const final = await loss(false);
    expect(final).toBeLessThan(0.5 * losses[0]);
    expect(losses.at(-1)!).toBeLessThan(losses[0]);
    for (const parameter of parameters.values()) parameter.dispose();

    await model.save(join(tmp, 'trained'));
    const reloaded = await loadModel(join(tmp, 'trained'));
    try {
      await tidy(async () => {
        const { inputIds, attentionMask } = padBatch(corpus);
        const before = (await model.tokenLogprobs(inputIds, attentionMask)).toNumbers();
        expect((await reloaded.tokenLogprobs(inputIds, attentionMask)).toNumbers()).toEqual(before);
      });
    } finally {
      reloaded.dispose();
    }
  });
});

test('an AdamW step aborted while it runs updates every parameter or none', async () => {
  const parameters = new Map(Array.from({ length: 100 }, (_, i) => [`p${i}`, Tensor.randn([256, 256], i).detach()] as const));
  for (const p of parameters.values()) p.requiresGrad = true;
  await tidy(async () => {
    let loss = Tensor.zeros([]);
    for (const p of parameters.values()) loss = loss.add(p.mul(p).sum());
    await loss.backwardAsync();
  });
  const before = [...parameters.values()].map((p) => p.toNumbers()[0]);
  const optimizer = new AdamW(parameters, { lr: 0.1, weightDecay: 0 });
  const controller = new AbortController();
  const step = optimizer.step({ signal: controller.signal });
  setTimeout(() => controller.abort(), 2);
  const outcome = await step.then(
    () => 'done',
    (err: Error) => err.name,
  );
  const changed = [...parameters.values()].filter((p, i) => p.toNumbers()[0] !== before[i]).length;
  // Aborted before it began: nothing moved; after: it ran to its end.
  expect(outcome === 'done' ? [changed, optimizer.steps] : [changed, optimizer.steps, outcome]).toEqual(
    outcome === 'done' ? [100, 1] : [0, 0, 'AbortError'],
  );
  for (const p of parameters.values()) p.dispose();
});
