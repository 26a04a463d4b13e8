// initModel: fresh weights from a config.json object, drawn as transformers draws them; saved and reloaded intact.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel, loadModel } from '../lib/model/index.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
const configOf = async (dir: string) => JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

test('weights follow the config: N(0, 0.02) matrices, a zero padding row, unit norms; a seed fixes them', async () => {
  const config = await configOf(FIXTURE);
  const a = await initModel(config, { seed: 3 });
  const b = await initModel(config, { seed: 3 });
  const c = await initModel(config, { seed: 4 });
  try {
    tidy(() => {
      const [pa, pb, pc] = [a, b, c].map((m) => m.parameters());
      expect([...pa.keys()]).toEqual([...pb.keys()]);
      const embedding = pa.get('model.embed_tokens.weight')!;
      expect(embedding.shape).toEqual([83, 64]);
      expect(embedding.select(0, 0).abs().max().item()).toBe(0); // pad_token_id 0
      const std = embedding.slice(0, 1, 83).pow(2).mean().sqrt().item(); // the mean is ~0
      expect(std).toBeGreaterThan(0.018);
      expect(std).toBeLessThan(0.022);
      expect(
        pa
          .get('model.norm.weight')!
          .toNumbers()
          .every((x) => x === 1),
      ).toBe(true);
      expect(
        pa
          .get('model.layers.0.self_attn.q_norm.weight')!
          .toNumbers()
          .every((x) => x === 1),
      ).toBe(true);
      for (const [name, tensor] of pa) {
        expect(tensor.sub(pb.get(name)!).abs().max().item()).toBe(0);
      }
      expect(pa.get('model.layers.1.mlp.down_proj.weight')!.sub(pc.get('model.layers.1.mlp.down_proj.weight')!).abs().max().item()).toBeGreaterThan(
        0,
      );
      for (const map of [pa, pb, pc]) for (const tensor of map.values()) tensor.dispose();
    });
  } finally {
    for (const m of [a, b, c]) m.dispose();
  }
});

test('a new model saves with the tokenizer of tokenizerFrom and reloads with the same logits', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-init-'));
  const model = await initModel(await configOf(FIXTURE), { seed: 1, tokenizerFrom: FIXTURE });
  try {
    await model.save(join(tmp, 'new'));
    expect(existsSync(join(tmp, 'new', 'tokenizer.json'))).toBe(true);
    const reloaded = await loadModel(join(tmp, 'new'));
    await tidy(async () => {
      const ids = Tensor.from(new BigInt64Array([1n, 20n, 31n, 7n, 45n]), [1, 5]);
      const before = (await model.forward(ids)).toNumbers();
      expect((await reloaded.forward(ids)).toNumbers()).toEqual(before);
    });
    reloaded.dispose();
  } finally {
    model.dispose();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('a bad config is refused naming the field', async () => {
  const config = { ...(await configOf(FIXTURE)), num_attention_heads: 5 };
  await expect(initModel(config)).rejects.toThrow(/num_attention_heads|num_key_value_heads|head/);
  await expect(initModel({ ...(await configOf(FIXTURE)), initializer_range: -1 })).rejects.toThrow(/initializerRange must be a positive number/);
});

test('a seed or padding index that is not a non-negative integer is refused, not truncated', async () => {
  const config = await configOf(FIXTURE);
  for (const seed of [0.9, Number.NaN, 1e30, -1]) {
    await expect(initModel(config, { seed })).rejects.toThrow(/seed must be (an integer|a non-negative integer)/);
  }
});
