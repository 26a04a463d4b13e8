// LoRA adapters in PEFT's format: the fixture adapter against PEFT's logits, merge, save/reload, training only the
// adapter, and adapter folders that cannot be used.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, AdapterError, initModel, loadModel, padBatch, readSafetensors, writeSafetensors, type CausalLM } from '../lib/model/index.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const FIXTURES = join(process.cwd(), 'fixtures/models');
const BASE = join(FIXTURES, 'qwen3-tiny');
const ADAPTER = join(FIXTURES, 'qwen3-tiny-lora');
// On q_proj, v_proj and the tied lm_head; PEFT saves the head's base weight beside it.
const HEAD_ADAPTER = join(FIXTURES, 'qwen3-tiny-lora-head');

interface Reference {
  input_ids: number[][];
  attention_mask: number[][];
  logits: number[][][];
  logprobs: number[][];
}

let ref: Reference;
let headRef: Reference;
let tmp: string;
beforeAll(async () => {
  ref = JSON.parse(await readFile(join(ADAPTER, 'reference.json'), 'utf8')) as Reference;
  headRef = JSON.parse(await readFile(join(HEAD_ADAPTER, 'reference.json'), 'utf8')) as Reference;
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-lora-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const int64 = (rows: number[][]) => Tensor.from(rows, undefined, { dtype: 'int64' });

/** Logits at real tokens, flattened. */
async function tokenLogits(model: CausalLM, r = ref): Promise<number[]> {
  return tidy(async () => {
    const logits = (await model.forward(int64(r.input_ids), int64(r.attention_mask))).toNested() as number[][][];
    return logits.flatMap((row, b) => row.filter((_, t) => r.attention_mask[b][t] === 1)).flat();
  });
}

const maxDifference = (a: number[], b: number[]) => Math.max(...a.map((value, i) => Math.abs(value - b[i])));

const referenceLogits = (r = ref) => r.logits.flatMap((row, b) => row.filter((_, t) => r.attention_mask[b][t] === 1)).flat();

function expectClose(actual: number[], expected: number[], relative: number): void {
  expect(actual).toHaveLength(expected.length);
  const worst = Math.max(...actual.map((value, i) => Math.abs(value - expected[i]) / Math.max(Math.abs(expected[i]), 1)));
  expect(worst).toBeLessThan(relative);
}

test('the PEFT adapter gives PEFT logits and log-probs; merging keeps them', async () => {
  const model = await loadModel(BASE);
  try {
    await model.loadAdapter(ADAPTER);
    expect(model.lora).toEqual({
      rank: 4,
      alpha: 8,
      rslora: false,
      targetModules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
    });
    expect(model.loraParameters().size).toBe(28);
    expectClose(await tokenLogits(model), referenceLogits(), 1e-4);
    await tidy(async () => {
      const logprobs = await model.tokenLogprobs(int64(ref.input_ids), int64(ref.attention_mask));
      expectClose(logprobs.toNumbers(), ref.logprobs.flat(), 1e-4);
    });

    await model.mergeAdapter();
    expect(model.lora).toBeNull();
    expect(model.loraParameters().size).toBe(0);
    expectClose(await tokenLogits(model), referenceLogits(), 1e-4);
  } finally {
    model.dispose();
  }
});

test('saveAdapter → loadAdapter on a fresh base gives the same logits', async () => {
  const model = await loadModel(BASE);
  const fresh = await loadModel(BASE);
  try {
    await model.loadAdapter(ADAPTER);
    await model.saveAdapter(join(tmp, 'saved'));
    await fresh.loadAdapter(join(tmp, 'saved'));
    expect(await tokenLogits(fresh)).toEqual(await tokenLogits(model));
    const config = JSON.parse(await readFile(join(tmp, 'saved', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, task_type: 'CAUSAL_LM' });
  } finally {
    model.dispose();
    fresh.dispose();
  }
});

test('a new adapter changes nothing until trained; training it alone lowers the loss and leaves the base', async () => {
  const model = await loadModel(BASE);
  try {
    const base = await tokenLogits(model);
    await model.addLora({ rank: 8, alpha: 16, targetModules: ['q_proj', 'v_proj', 'down_proj', 'lm_head'], seed: 1 });
    expect(await tokenLogits(model)).toEqual(base);
    await expect(model.addLora({ rank: 2, alpha: 2 })).rejects.toThrow(/already has a LoRA adapter/);

    const adapter = model.loraParameters();
    expect(adapter.size).toBe(2 * 3 * 2 + 2);
    expect(adapter.get('base_model.model.lm_head.lora_B.weight')?.shape).toEqual([83, 8]);
    for (const parameter of adapter.values()) parameter.requiresGrad = true;
    const optimizer = new AdamW(adapter, { lr: 2e-2, weightDecay: 0 });
    const sequences = [
      [1, 20, 21, 22, 23, 3, 30, 31, 2],
      [1, 40, 41, 3, 50, 2],
    ];
    const loss = (train: boolean) =>
      tidy(async () => {
        const { inputIds, attentionMask } = padBatch(sequences);
        const value = (await model.tokenLogprobs(inputIds, attentionMask)).mean().neg();
        if (train) await value.backwardAsync();
        return value.item();
      });
    const first = await loss(false);
    for (let step = 0; step < 15; step++) {
      await optimizer.zeroGrad();
      await loss(true);
      await optimizer.step();
    }
    expect(await loss(false)).toBeLessThan(0.7 * first);
    // The head's adapter trained too (through the fused head's low-rank term).
    expect(Math.max(...adapter.get('base_model.model.lm_head.lora_B.weight')!.toNumbers().map(Math.abs))).toBeGreaterThan(1e-3);
    for (const parameter of adapter.values()) parameter.dispose();

    await model.removeAdapter();
    expect(await tokenLogits(model)).toEqual(base);
  } finally {
    model.dispose();
  }
});

describe('an adapter on the tied LM head', () => {
  test("PEFT's logits and log-probs; merging unties the head, keeps the logits and the embedding, and saves a checkpoint that reloads", async () => {
    const model = await loadModel(BASE);
    try {
      await model.loadAdapter(HEAD_ADAPTER);
      expect(model.lora?.targetModules).toEqual(['lm_head', 'q_proj', 'v_proj']);
      expect(model.loraParameters().size).toBe(2 * 2 * 2 + 2);
      expectClose(await tokenLogits(model, headRef), referenceLogits(headRef), 1e-4);
      await tidy(async () => {
        const logprobs = await model.tokenLogprobs(int64(headRef.input_ids), int64(headRef.attention_mask));
        expectClose(logprobs.toNumbers(), headRef.logprobs.flat(), 1e-4);
      });
      const embedding = await tidy(() => model.parameters().get('model.embed_tokens.weight')!.toNumbers());

      await model.mergeAdapter();
      expect(model.config.tieWordEmbeddings).toBe(false);
      const merged = model.parameters();
      expect(merged.get('model.embed_tokens.weight')!.toNumbers()).toEqual(embedding);
      expect(maxDifference(merged.get('lm_head.weight')!.toNumbers(), embedding)).toBeGreaterThan(1e-3);
      for (const tensor of merged.values()) tensor.dispose();
      expectClose(await tokenLogits(model, headRef), referenceLogits(headRef), 1e-4);

      await model.save(join(tmp, 'merged-head'));
      expect(JSON.parse(await readFile(join(tmp, 'merged-head', 'config.json'), 'utf8')).tie_word_embeddings).toBe(false);
      const reloaded = await loadModel(join(tmp, 'merged-head'));
      try {
        expect(await tokenLogits(reloaded, headRef)).toEqual(await tokenLogits(model, headRef));
      } finally {
        reloaded.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  test('saveAdapter → loadAdapter gives the same logits; a saved head base weight of another model is refused', async () => {
    const model = await loadModel(BASE);
    const fresh = await loadModel(BASE);
    try {
      await model.loadAdapter(HEAD_ADAPTER);
      await model.saveAdapter(join(tmp, 'head-saved'));
      await fresh.loadAdapter(join(tmp, 'head-saved'));
      expect(await tokenLogits(fresh, headRef)).toEqual(await tokenLogits(model, headRef));
      await fresh.removeAdapter();

      const dir = join(tmp, 'head-other-base');
      await cp(HEAD_ADAPTER, dir, { recursive: true });
      await tidy(async () => {
        const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
        const name = 'base_model.model.lm_head.base_layer.weight';
        tensors.set(name, tensors.get(name)!.mul(2));
        await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
      });
      await expect(fresh.loadAdapter(dir)).rejects.toThrow(/carries an lm_head base weight .* differs from this model's head/);
      expect(fresh.lora).toBeNull();
    } finally {
      model.dispose();
      fresh.dispose();
    }
  });
});

describe('adapter folders that cannot be used', () => {
  let model: CausalLM;
  beforeAll(async () => {
    model = await loadModel(BASE);
  });
  afterAll(() => model.dispose());

  async function adapterWith(name: string, change: Record<string, unknown>): Promise<string> {
    const dir = join(tmp, name);
    await cp(ADAPTER, dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, ...change }));
    return dir;
  }

  test.each([
    ['DoRA', { use_dora: true }, /use_dora: DoRA \(use_dora: true\) is not supported/],
    ['a regex target', { target_modules: '.*proj' }, /target_modules: target_modules other than a list/],
    ['another module', { target_modules: ['q_proj', 'embed_tokens'] }, /target_modules\.1: /],
    ['another PEFT method', { peft_type: 'IA3' }, /peft_type: an adapter other than LORA is not supported/],
    ['modules_to_save', { modules_to_save: ['lm_head'] }, /modules_to_save is not supported/],
  ])('%s', async (name, change, message) => {
    const dir = await adapterWith(name.replace(/\W/g, '-'), change);
    await expect(model.loadAdapter(dir)).rejects.toThrow(AdapterError);
    await expect(model.loadAdapter(dir)).rejects.toThrow(message);
  });

  test('a missing or mis-shaped adapter tensor is named, and leaves the model without an adapter', async () => {
    const before = await tokenLogits(model);
    for (const [name, edit, message] of [
      [
        'missing-tensor',
        (t: Map<string, Tensor>) => t.delete('base_model.model.model.layers.1.mlp.up_proj.lora_B.weight'),
        /lacks 1 tensor.*layers\.1\.mlp\.up_proj\.lora_B/,
      ],
      [
        'wrong-rank',
        (t: Map<string, Tensor>) => t.set('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', Tensor.zeros([3, 64])),
        /q_proj\.lora_A\.weight' .* has shape \[3, 64\], but the model expects \[4, 64\]/,
      ],
    ] as const) {
      const dir = await adapterWith(name, {});
      await tidy(async () => {
        const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
        edit(tensors);
        await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
      });
      await expect(model.loadAdapter(dir)).rejects.toThrow(message);
      expect(model.lora).toBeNull();
      expect(model.loraParameters().size).toBe(0);
      expect(await tokenLogits(model)).toEqual(before);
    }
  });

  test('saving or merging without an adapter', async () => {
    await expect(model.saveAdapter(join(tmp, 'none'))).rejects.toThrow(/no LoRA adapter/);
    await expect(model.mergeAdapter()).rejects.toThrow(/no LoRA adapter/);
  });
});

test('activation checkpointing with only the adapter training gives the adapter the same gradients', async () => {
  const model = await loadModel(BASE);
  try {
    await model.loadAdapter(ADAPTER);
    const adapter = model.loraParameters();
    for (const p of adapter.values()) p.requiresGrad = true;
    /** Every adapter gradient after one backward of the sequences' log-likelihood, checkpointed or not. */
    const gradients = (checkpoint: boolean) =>
      tidy(async () => {
        for (const p of adapter.values()) p.zeroGrad();
        const logprobs = await model.tokenLogprobs(int64(ref.input_ids), int64(ref.attention_mask), { checkpoint });
        await logprobs.sum().backwardAsync();
        return [...adapter.values()].flatMap((p) => p.grad!.toNumbers());
      });
    const plain = await gradients(false);
    expect(plain.some((g) => g !== 0)).toBe(true);
    expectClose(await gradients(true), plain, 1e-5);
    for (const p of adapter.values()) p.dispose();
  } finally {
    model.dispose();
  }
});

test('the parameter lists read while an adapter is being added are whole: none of it, or all', async () => {
  const config = JSON.parse(await readFile(join(BASE, 'config.json'), 'utf8'));
  const model = await initModel({ ...config, num_hidden_layers: 48 }, { seed: 1 });
  try {
    const adding = model.addLora({ rank: 2, alpha: 4, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const listed = model.loraParameters();
      seen.add(listed.size);
      for (const p of listed.values()) p.dispose();
    }
    await adding;
    const full = model.loraParameters();
    expect(full.size).toBe(48 * 7 * 2);
    for (const size of seen) expect([0, full.size]).toContain(size);
    for (const p of full.values()) p.dispose();
  } finally {
    model.dispose();
  }
});
