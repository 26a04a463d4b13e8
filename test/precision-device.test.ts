// Mixed precision and device discipline on the CPU: bf16 compute over float32 master weights (the same logits as
// a bf16-stored model, float32 gradients, AdamW updates a bf16 copy would round away), the dtype a checkpoint is
// saved in, the device/dtype keys and flags of the stages, and clear errors for devices that are absent, malformed,
// or mixed within one objective call (meta tensors stand in for a second device where there is no GPU).
import { jest } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { resolveRlConfig } from '../lib/config/rl.js';
import { resolveSftConfig } from '../lib/config/sft.js';
import { writeJsonl } from '../lib/data/index.js';
import { AdamW, loadModel, loadOptions, padBatch, type CausalLM } from '../lib/model/index.js';
import { environmentReport } from '../lib/native/runtime.js';
import { prefixValues, tokenLogprobs } from '../lib/ops/objectives.js';
import { makeRlRecords, makeSftRecords } from '../lib/task/index.js';
import { cudaMemory, cudaResetPeakMemory, cudaSetDevice, cudaSynchronize, Tensor, tidy } from '../lib/tensor/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';
import { trainRl } from '../lib/train/rl.js';
import { captureStdout } from './helpers/stdout.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
const Q_PROJ = 'model.layers.0.self_attn.q_proj.weight';
const cudaAvailable = environmentReport().runtime.cudaAvailable;

const ids = () =>
  padBatch([
    [1, 5, 9, 3, 7, 2, 11],
    [4, 8, 15, 16],
  ]);

async function withLoaded<T>(options: Parameters<typeof loadModel>[1], body: (model: CausalLM) => Promise<T>): Promise<T> {
  const model = await loadModel(FIXTURE, options);
  try {
    return await body(model);
  } finally {
    model.dispose();
  }
}

describe('mixed precision (float32 master weights, bf16 compute)', () => {
  test('computes exactly what a bf16-stored model computes, and stores float32', async () => {
    const logits = async (model: CausalLM) =>
      tidy(async () => {
        const { inputIds, attentionMask } = ids();
        return (await model.forward(inputIds, attentionMask)).toNumbers();
      });
    const stored = await withLoaded({ dtype: 'bfloat16' }, async (model) => {
      expect([model.dtype, model.parameterDtype]).toEqual(['bfloat16', 'bfloat16']);
      return logits(model);
    });
    const mixed = await withLoaded({ dtype: 'bfloat16', masterWeights: true }, async (model) => {
      expect([model.dtype, model.parameterDtype]).toEqual(['bfloat16', 'float32']);
      await tidy(async () => {
        const { inputIds, attentionMask } = ids();
        expect((await model.forward(inputIds, attentionMask)).dtype).toBe('bfloat16');
      });
      return logits(model);
    });
    const full = await withLoaded({}, logits);
    expect(mixed).toEqual(stored);
    // bf16 differs from float32 by rounding, not by a bug: small against the logits' own scale.
    const worst = Math.max(...full.map((x, i) => Math.abs(x - mixed[i])));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(0.1);
  });

  test('gradients reach the float32 master weights, and AdamW keeps updates a bf16 copy would round away', async () => {
    const step = async (model: CausalLM): Promise<{ changed: number; gradDtype: string | undefined }> =>
      tidy(async () => {
        const parameters = model.parameters();
        for (const p of parameters.values()) p.requiresGrad = true;
        const before = parameters.get(Q_PROJ)!.toNumbers();
        const optimizer = new AdamW(parameters, { lr: 1e-6, weightDecay: 0 });
        const { inputIds, attentionMask } = ids();
        const logprobs = await model.tokenLogprobs(inputIds, attentionMask);
        await logprobs.sum().neg().backwardAsync();
        const gradDtype = parameters.get(Q_PROJ)!.grad?.dtype;
        await optimizer.step({ lr: 1e-6 }); // ~1e-6 per weight: far below bf16's spacing near 0.02 (~1e-4)
        const after = parameters.get(Q_PROJ)!.toNumbers();
        await optimizer.zeroGrad();
        for (const p of parameters.values()) p.requiresGrad = false;
        return { changed: after.filter((x, i) => x !== before[i]).length / after.length, gradDtype };
      });
    // The share of weights the step changed: nearly all in float32; in bf16 only those near zero, where its spacing is fine.
    const mixed = await withLoaded({ dtype: 'bfloat16', masterWeights: true }, step);
    const stored = await withLoaded({ dtype: 'bfloat16' }, step);
    expect([mixed.gradDtype, stored.gradDtype]).toEqual(['float32', 'bfloat16']);
    expect(mixed.changed).toBeGreaterThan(0.9);
    expect(stored.changed).toBeLessThan(0.1);
  });

  test('a LoRA adapter is float32 under bf16; save() writes the stored dtype, and reloading gives the same weights', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-mp-'));
    try {
      await withLoaded({ dtype: 'bfloat16' }, async (model) => {
        await model.addLora({ rank: 2, alpha: 4, targetModules: ['q_proj'] });
        const adapter = model.loraParameters();
        expect(new Set([...adapter.values()].map((p) => p.dtype))).toEqual(new Set(['float32']));
        for (const p of adapter.values()) p.dispose();
      });
      const saved = await withLoaded({ dtype: 'bfloat16', masterWeights: true }, async (model) => {
        await model.save(join(tmp, 'mixed'));
        return tidy(() => model.parameters().get(Q_PROJ)!.toNumbers());
      });
      const config = JSON.parse(await readFile(join(tmp, 'mixed', 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config.torch_dtype ?? config.dtype).toBe('float32');
      const reloaded = await loadModel(join(tmp, 'mixed'), { dtype: 'bfloat16', masterWeights: true });
      expect(tidy(() => reloaded.parameters().get(Q_PROJ)!.toNumbers())).toEqual(saved);
      reloaded.dispose();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  test('RL in bf16: π_old (cached casts) and the update pass (casts with a graph) agree, so the first ratio is 1', async () => {
    const tokenizer = await loadTokenizer(FIXTURE);
    const config = resolveRlConfig({
      algorithm: 'distrl-ipvrm',
      steps: 2,
      dtype: 'bfloat16',
      rollout: { promptsPerStep: 2, samples: 4, oversample: 1, maxNewTokens: 4 },
      actor: { lr: 1e-3, microBatch: 8 },
      rewardModel: { lr: 1e-4 },
    });
    const [policy, rewardModel, reference] = [
      await loadModel(FIXTURE, loadOptions(config, 'trains')),
      await loadModel(FIXTURE, loadOptions(config, 'trains')),
      await loadModel(FIXTURE, loadOptions(config, 'frozen')),
    ];
    try {
      expect([policy.parameterDtype, reference.parameterDtype]).toEqual(['float32', 'bfloat16']);
      const history = await trainRl({ policy, rewardModel, reference }, tokenizer, makeRlRecords(0, 4), config, {
        reward: (rollout) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0),
      });
      expect(history).toHaveLength(2);
      for (const step of history) {
        expect(Math.abs(step.ppoKl)).toBeLessThan(1e-6);
        expect([step.loss, step.gradNorm, step.entropy].every(Number.isFinite)).toBe(true);
      }
    } finally {
      for (const model of [policy, rewardModel, reference]) model.dispose();
    }
  });
});

describe('devices', () => {
  test('tensors on two devices in one objective call are refused, naming each', async () => {
    const logits = Tensor.randn([1, 3, 7], 0);
    const mask = Tensor.ones([1, 3], { device: 'meta' });
    const tokens = Tensor.zeros([1, 3], { dtype: 'int64' });
    await expect(prefixValues({ logits, refLogits: logits, tokens, mask })).rejects.toThrow(
      /prefix_values: tensor inputs must share one device, got logits on cpu, mask on meta, refLogits on cpu, tokens on cpu/,
    );
    await expect(tokenLogprobs(logits, Tensor.zeros([1, 3, 1], { dtype: 'int64', device: 'meta' }))).rejects.toThrow(/index on meta/);
    for (const t of [logits, mask, tokens]) t.dispose();
  });

  test('a model on meta, a malformed device, or CUDA where there is none: clear errors', async () => {
    await expect(loadModel(FIXTURE, { device: 'meta' })).rejects.toThrow(/a model lives on cpu or cuda, not meta/);
    await expect(loadModel(FIXTURE, { device: 'tpu' as never })).rejects.toThrow(/unknown device 'tpu'/);
    expect(() => loadOptions({ device: 'gpu', dtype: 'float32' }, 'frozen')).toThrow(/device must be cpu, cuda or cuda:N, got 'gpu'/);
    if (!cudaAvailable) {
      await expect(loadModel(FIXTURE, { device: 'cuda' })).rejects.toMatchObject({
        code: 'ERR_CUDA_UNAVAILABLE',
        message: expect.stringMatching(/CUDA is not available/),
      });
    }
  });

  test('the CUDA runtime controls answer ERR_CUDA_UNAVAILABLE without CUDA; env lists no GPU', async () => {
    if (cudaAvailable) return; // a GPU machine checks them in test/cuda.test.ts
    expect(environmentReport().runtime.cudaDevices).toEqual([]);
    expect(() => cudaMemory()).toThrow(/CUDA is not available/);
    expect(() => cudaResetPeakMemory('cuda:0')).toThrow(/CUDA is not available/);
    await expect(cudaSynchronize()).rejects.toMatchObject({ code: 'ERR_CUDA_UNAVAILABLE' });
    await expect(cudaSetDevice(0)).rejects.toMatchObject({ code: 'ERR_CUDA_UNAVAILABLE' });
    await expect(cudaSetDevice(-1)).rejects.toThrow(/index is >= 0/);
    expect(() => cudaMemory('cpu')).toThrow(/expected a CUDA device/);
  });

  test('stage configs take device and dtype (bfloat16 or float32 only) and name a bad one', () => {
    expect(resolveSftConfig({})).toMatchObject({ device: 'cpu', dtype: 'float32' });
    expect(resolveSftConfig({ device: 'cuda:1', dtype: 'bfloat16' })).toMatchObject({ device: 'cuda:1', dtype: 'bfloat16' });
    expect(() => resolveSftConfig({ device: 'gpu0' })).toThrow(/device: must be cpu, cuda or cuda:N/);
    expect(() => resolveSftConfig({ dtype: 'float16' })).toThrow(/dtype/);
  });
});

describe('--device and --dtype on the commands', () => {
  let stdout: string[];
  beforeEach(() => {
    stdout = captureStdout();
    jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => jest.restoreAllMocks());

  test('sft --dtype bfloat16 trains in mixed precision, records it, and saves float32 weights', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-sft-bf16-'));
    try {
      await writeJsonl(join(tmp, 'sft.jsonl'), makeSftRecords(1, 8, { minDepth: 2, maxDepth: 3 }));
      const args = ['sft', '--data', join(tmp, 'sft.jsonl'), '--model', FIXTURE, '--steps', '3', '--batch-size', '4', '--quiet'];
      await main([...args, '--out', join(tmp, 'run'), '--dtype', 'bfloat16']);
      const summary = JSON.parse(stdout.join('').trim()) as { steps: number; loss: number };
      expect(summary.steps).toBe(3);
      expect(Number.isFinite(summary.loss)).toBe(true);
      const run = JSON.parse(await readFile(join(tmp, 'run', 'run.json'), 'utf8')) as { config: { dtype: string; device: string } };
      expect(run.config).toMatchObject({ dtype: 'bfloat16', device: 'cpu' });
      const saved = JSON.parse(await readFile(join(tmp, 'run', 'model', 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(saved.torch_dtype ?? saved.dtype).toBe('float32');
      // bf16 resume: a run that died after its step-2 checkpoint (summary and model gone) and resumed from it ends
      // with the float32 master weights of the uninterrupted run, bit for bit.
      const weights = async (run: string) => {
        const model = await loadModel(join(tmp, run, 'model'));
        const values = tidy(() => model.parameters().get(Q_PROJ)!.toNumbers());
        model.dispose();
        return values;
      };
      const bf16 = [...args, '--dtype', 'bfloat16', '--set', 'checkpoint.every=2'];
      await main([...bf16, '--out', join(tmp, 'whole')]);
      await main([...bf16, '--out', join(tmp, 'resumed')]);
      await rm(join(tmp, 'resumed', 'summary.json'));
      await rm(join(tmp, 'resumed', 'model'), { recursive: true });
      await main([...bf16, '--out', join(tmp, 'resumed'), '--resume', join(tmp, 'resumed', 'checkpoints', 'step-000002')]);
      expect(await weights('resumed')).toEqual(await weights('whole'));
      await expect(main([...args, '--out', join(tmp, 'bad'), '--device', 'gpu'])).rejects.toThrow(/device: must be cpu, cuda or cuda:N/);
      if (!cudaAvailable) await expect(main([...args, '--out', join(tmp, 'cuda'), '--device', 'cuda'])).rejects.toThrow(/CUDA is not available/);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
