// The native decoder against transformers: fixtures/models/ holds tiny random Qwen3 and Llama checkpoints with the
// logits and log-probs transformers computed for a padded batch (scripts/make_model_fixtures.py).
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CheckpointError,
  ModelConfigError,
  loadModel,
  padBatch,
  parseModelConfig,
  readSafetensors,
  writeSafetensors,
  type CausalLM,
} from '../lib/model/index.js';
import { Tensor, liveTensors, tidy } from '../lib/tensor/index.js';

const FIXTURES = join(process.cwd(), 'fixtures/models');

interface Reference {
  input_ids: number[][];
  attention_mask: number[][];
  logits: number[][][];
  logprobs: number[][];
  logits_bf16: number[][][];
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T;
const reference = (name: string) => readJson<Reference>(join(FIXTURES, name, 'reference.json'));
const int64 = (rows: number[][]) => Tensor.from(rows, undefined, { dtype: 'int64' });

/** Largest |actual - expected| / max(|expected|, 1) over the entries where `keep` holds. */
function maxRelativeError(actual: ArrayLike<number>, expected: number[], keep: (i: number) => boolean = () => true): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    if (keep(i)) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), 1));
  }
  return worst;
}

/** Error of logits at real tokens only: transformers and we both leave padding positions meaningless. */
function logitsError(logits: Tensor, ref: Reference, expected = ref.logits): number {
  const vocab = ref.logits[0][0].length;
  const mask = ref.attention_mask.flat();
  return maxRelativeError(logits.toArray() as Float32Array, expected.flat(2), (i) => mask[Math.floor(i / vocab)] === 1);
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-model-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A copy of a fixture folder that a test may damage. */
async function copyFixture(name: string, as: string): Promise<string> {
  const dir = join(tmp, as);
  await cp(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

describe.each([
  ['qwen3-tiny', 'Qwen3, tied embeddings, q/k norm, single file'],
  ['llama-tiny', 'Llama, untied, llama3 rope scaling, sharded'],
])('%s (%s)', (name) => {
  let model: CausalLM;
  let ref: Reference;
  beforeAll(async () => {
    model = await loadModel(join(FIXTURES, name));
    ref = await reference(name);
  });
  afterAll(() => model.dispose());

  test('logits of a padded batch match transformers (fp32, 1e-4 relative)', async () => {
    await tidy(async () => {
      const logits = await model.forward(int64(ref.input_ids), int64(ref.attention_mask));
      expect(logits.shape).toEqual([3, 12, model.config.vocabSize]);
      expect(logits.dtype).toBe('float32');
      expect(logitsError(logits, ref)).toBeLessThan(1e-4);
    });
  });

  test('logits for a range of positions are that slice of the full logits; a range outside the input is refused', async () => {
    await tidy(async () => {
      const [ids, mask] = [int64(ref.input_ids), int64(ref.attention_mask)];
      const full = await model.forward(ids, mask);
      const part = await model.forward(ids, mask, { positions: { start: 4, length: 6 } });
      expect(part.shape).toEqual([3, 6, model.config.vocabSize]);
      expect(part.toArray()).toEqual(full.slice(1, 4, 10).contiguous().toArray());
      await expect(model.forward(ids, mask, { positions: { start: 8, length: 5 } })).rejects.toThrow(
        /logits positions \[8, 13\) do not lie inside the 12 input positions/,
      );
    });
  });

  test('token log-probs match transformers', async () => {
    await tidy(async () => {
      const logprobs = await model.tokenLogprobs(int64(ref.input_ids), int64(ref.attention_mask));
      expect(logprobs.shape).toEqual([3, 11]);
      expect(maxRelativeError(logprobs.toArray() as Float32Array, ref.logprobs.flat())).toBeLessThan(1e-4);
      // Padding and each row's first token score exactly 0.
      const rows = logprobs.toNested() as number[][];
      expect(rows[1].slice(7)).toEqual([0, 0, 0, 0]);
      expect(rows[2].slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    });
  });

  test('a padded row gives the logits of its unpadded sequence, on either side', async () => {
    await tidy(async () => {
      const tokens = ref.input_ids[0].slice(0, 7);
      const alone = (await model.forward(int64([tokens]))).toNested() as number[][][];
      for (const side of ['left', 'right'] as const) {
        const { inputIds, attentionMask } = padBatch([tokens, ref.input_ids[0]], { side, padId: 5 });
        const rows = (await model.forward(inputIds, attentionMask)).toNested() as number[][][];
        const real = side === 'left' ? rows[0].slice(5) : rows[0].slice(0, 7);
        expect(maxRelativeError(real.flat(), alone[0].flat())).toBeLessThan(1e-5);
      }
    });
  });

  test('bfloat16 logits match transformers in bfloat16 to an ulp', async () => {
    const bf16 = await loadModel(join(FIXTURES, name), { dtype: 'bfloat16' });
    try {
      await tidy(async () => {
        const logits = await bf16.forward(int64(ref.input_ids), int64(ref.attention_mask));
        expect(logits.dtype).toBe('bfloat16');
        expect(logitsError(logits, ref, ref.logits_bf16)).toBeLessThan(2 ** -7);
        expect(logitsError(logits, ref)).toBeLessThan(0.05);
        const logprobs = await bf16.tokenLogprobs(int64(ref.input_ids), int64(ref.attention_mask));
        expect(logprobs.dtype).toBe('float32');
      });
    } finally {
      bf16.dispose();
    }
  });

  test('save → reload gives equal logits, as one file and as shards', async () => {
    for (const maxShardBytes of [undefined, 100_000]) {
      const dir = join(tmp, `${name}-saved-${maxShardBytes ?? 'single'}`);
      await model.save(dir, { maxShardBytes });
      const reloaded = await loadModel(dir);
      try {
        await tidy(async () => {
          const ids = int64(ref.input_ids);
          const mask = int64(ref.attention_mask);
          const before = (await model.forward(ids, mask)).toArray();
          expect((await reloaded.forward(ids, mask)).toArray()).toEqual(before);
        });
      } finally {
        reloaded.dispose();
      }
      const saved = await readJson<Record<string, unknown>>(join(dir, 'config.json'));
      expect(saved.vocab_size).toBe(model.config.vocabSize);
      const index = join(dir, 'model.safetensors.index.json');
      if (maxShardBytes) {
        const { weight_map } = await readJson<{ weight_map: Record<string, string> }>(index);
        expect(new Set(Object.values(weight_map)).size).toBeGreaterThan(1);
        expect(Object.keys(weight_map).sort()).toEqual([...model.parameters().keys()].sort());
      } else {
        await expect(readFile(index)).rejects.toThrow();
      }
      expect(JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')).eos_token).toBe('<eos>');
    }
  });
});

describe('gradients', () => {
  test('activation checkpointing gives the gradients of the plain forward', async () => {
    const model = await loadModel(join(FIXTURES, 'qwen3-tiny'));
    const parameters = model.parameters();
    const ref = await reference('qwen3-tiny');
    try {
      for (const parameter of parameters.values()) parameter.requiresGrad = true;
      const gradients = (checkpoint: boolean) =>
        tidy(async () => {
          for (const parameter of parameters.values()) parameter.zeroGrad();
          const logprobs = await model.tokenLogprobs(int64(ref.input_ids), int64(ref.attention_mask), { checkpoint });
          await logprobs.sum().backwardAsync();
          return [...parameters.values()].map((parameter) => parameter.grad!.toNumbers());
        });
      const plain = await gradients(false);
      const recomputed = await gradients(true);
      expect(recomputed).toHaveLength(parameters.size);
      plain.forEach((grad, i) => {
        expect(Math.max(...grad.map(Math.abs))).toBeGreaterThan(0);
        expect(maxRelativeError(recomputed[i], grad)).toBeLessThan(1e-5);
      });
    } finally {
      for (const parameter of parameters.values()) parameter.dispose();
      model.dispose();
    }
  });
});

describe('checkpoint formats', () => {
  test('the config layout of transformers < 5 (rope_theta, rope_scaling) loads the same model', async () => {
    const dir = await copyFixture('llama-tiny', 'llama-old-config');
    const config = await readJson<Record<string, unknown>>(join(dir, 'config.json'));
    const { rope_theta, ...scaling } = config.rope_parameters as Record<string, unknown>;
    delete config.rope_parameters;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, rope_theta, rope_scaling: scaling, torch_dtype: 'float32' }));
    const model = await loadModel(dir);
    try {
      expect(model.config.ropeScaling).toEqual({ factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
      const ref = await reference('llama-tiny');
      await tidy(async () => {
        expect(logitsError(await model.forward(int64(ref.input_ids), int64(ref.attention_mask)), ref)).toBeLessThan(1e-4);
      });
    } finally {
      model.dispose();
    }
  });

  test('rope scaling matters: without it the Llama logits differ', async () => {
    const dir = await copyFixture('llama-tiny', 'llama-no-scaling');
    const config = await readJson<Record<string, unknown>>(join(dir, 'config.json'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, rope_parameters: { rope_type: 'default', rope_theta: 10000 } }));
    const model = await loadModel(dir);
    try {
      const ref = await reference('llama-tiny');
      await tidy(async () => {
        expect(logitsError(await model.forward(int64(ref.input_ids), int64(ref.attention_mask)), ref)).toBeGreaterThan(1e-3);
      });
    } finally {
      model.dispose();
    }
  });

  test('a tied checkpoint that also stores lm_head.weight loads', async () => {
    const dir = await copyFixture('qwen3-tiny', 'qwen3-with-head');
    await tidy(async () => {
      const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
      tensors.set('lm_head.weight', tensors.get('model.embed_tokens.weight')!.clone());
      await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    });
    (await loadModel(dir)).dispose();
  });

  test('safetensors round trip keeps dtypes, shapes, values and metadata', async () => {
    const path = join(tmp, 'mixed.safetensors');
    await tidy(async () => {
      const tensors = {
        odd: Tensor.from([1, 2, 3], [3], { dtype: 'bfloat16' }),
        wide: Tensor.from(
          [
            [1.5, -2],
            [3, 4e10],
          ],
          undefined,
          { dtype: 'float64' },
        ),
        ids: Tensor.from([7, 8, 9, 10, 11], [5], { dtype: 'int64' }),
        flags: Tensor.from([true, false], [2], { dtype: 'bool' }),
        empty: Tensor.zeros([0, 4]),
        'naïve "quoted" name': Tensor.from([0.25], [1]),
      };
      await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
      const { tensors: read, metadata } = await readSafetensors(path);
      expect(metadata).toEqual({ format: 'pt', note: 'ünïcode' });
      expect([...read.keys()].sort()).toEqual(Object.keys(tensors).sort());
      for (const [key, tensor] of Object.entries(tensors)) {
        const copy = read.get(key)!;
        expect([copy.dtype, copy.shape]).toEqual([tensor.dtype, tensor.shape]);
        expect(copy.toArray()).toEqual(tensor.toArray());
      }
    });
  });
});

describe('errors name what is wrong', () => {
  /** Rewrites qwen3-tiny's weights through `edit` and returns the load error. */
  async function loadEdited(as: string, edit: (tensors: Map<string, Tensor>) => void): Promise<Error> {
    const dir = await copyFixture('qwen3-tiny', as);
    await tidy(async () => {
      const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
      edit(tensors);
      await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    });
    return loadModel(dir).then(
      () => {
        throw new Error('loaded');
      },
      (err: Error) => err,
    );
  }

  test('a missing tensor', async () => {
    const err = await loadEdited('missing', (t) => t.delete('model.layers.1.mlp.up_proj.weight'));
    expect(err.message).toMatch(/lacks 1 tensor.*'model\.layers\.1\.mlp\.up_proj\.weight'/);
  });

  test('a config asking for more than the checkpoint holds fails on the headers, before the model is allocated', async () => {
    const dir = await copyFixture('qwen3-tiny', 'many-layers');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    // 100,000 layers of a 4096-wide model would be ~1 TB of float32 weights.
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 100_000, hidden_size: 4096, head_dim: 1024 }));
    const rssBefore = process.memoryUsage.rss();
    await expect(loadModel(dir)).rejects.toThrow(
      /config\.json describes 1100002 weight tensors \(num_hidden_layers = 100000\), but the checkpoint holds 24/,
    );
    expect(process.memoryUsage.rss() - rssBefore).toBeLessThan(2 ** 30);
  });

  test('a scoring pass that fails names its batch and the longest sequence in it', async () => {
    const model = await loadModel(join(FIXTURES, 'qwen3-tiny'));
    try {
      const sequences = [[1, 2, 3], [4, 5], Array.from({ length: 600 }, () => 5), [6, 7]];
      await expect(model.sequenceLogprobs(sequences, { batchSize: 2 })).rejects.toThrow(
        /scoring sequences 2–3 \(the longest: sequence 2, 600 tokens\) failed: an input of 600 tokens is longer than this model's max_position_embeddings \(512\)/,
      );
    } finally {
      model.dispose();
    }
  });

  test('an extra tensor', async () => {
    const err = await loadEdited('extra', (t) => t.set('model.layers.0.self_attn.rotary.weight', Tensor.zeros([2])));
    expect(err.message).toMatch(/does not use: 'model\.layers\.0\.self_attn\.rotary\.weight'/);
  });

  test('a mis-shaped tensor', async () => {
    const err = await loadEdited('misshaped', (t) => t.set('model.norm.weight', Tensor.ones([32])));
    expect(err.message).toContain("tensor 'model.norm.weight'");
    expect(err.message).toContain('has shape [32], but the model expects [64]');
  });

  test('weights holding NaN or an infinity are refused, named', async () => {
    const err = await loadEdited('nan', (t) => {
      const norm = t.get('model.norm.weight')!;
      t.set(
        'model.norm.weight',
        Tensor.from(
          Float32Array.from(norm.toArray() as Float32Array, (x, i) => (i === 3 ? NaN : x)),
          norm.shape,
        ),
      );
      const embed = t.get('model.embed_tokens.weight')!;
      t.set('model.embed_tokens.weight', embed.mul(0).add(Infinity));
    });
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(/weights hold NaN or infinite values: .*'model\.embed_tokens\.weight'/);
    expect(err.message).toContain("'model.norm.weight'");
  });

  test('a truncated weight file', async () => {
    const dir = await copyFixture('qwen3-tiny', 'truncated');
    const bytes = await readFile(join(dir, 'model.safetensors'));
    await writeFile(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    await expect(loadModel(dir)).rejects.toThrow(/model\.safetensors: tensor '.*' lies past the end of the file/);
  });

  test('not a safetensors file', async () => {
    const dir = await copyFixture('qwen3-tiny', 'garbage');
    await writeFile(join(dir, 'model.safetensors'), 'this is not a checkpoint at all');
    await expect(loadModel(dir)).rejects.toThrow(/model\.safetensors is not a safetensors file/);
  });

  describe('a safetensors header must tile its data section exactly', () => {
    /** A file with this header (tensors F32 [2] each) over `dataBytes` bytes of data. */
    async function rawFile(name: string, offsets: [number, number][], dataBytes: number): Promise<string> {
      const header = Object.fromEntries(
        offsets.map((range, i) => [`t${i}`, { dtype: 'F32', shape: [(range[1] - range[0]) / 4], data_offsets: range }]),
      );
      let json = JSON.stringify(header);
      json += ' '.repeat((8 - (json.length % 8)) % 8);
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(json.length));
      const file = join(tmp, name);
      await writeFile(file, Buffer.concat([length, Buffer.from(json), Buffer.alloc(dataBytes)]));
      return file;
    }
    test.each([
      [
        'overlapping tensors',
        [
          [0, 8],
          [4, 12],
        ] as [number, number][],
        12,
        /tensor 't1' overlaps the tensor before it/,
      ],
      [
        'a gap between tensors',
        [
          [0, 8],
          [12, 20],
        ] as [number, number][],
        20,
        /4 bytes before tensor 't1' belong to no tensor/,
      ],
      [
        'offsets shifted by one byte',
        [
          [1, 9],
          [9, 17],
        ] as [number, number][],
        17,
        /1 bytes before tensor 't0' belong to no tensor/,
      ],
      ['bytes after the last tensor', [[0, 8]] as [number, number][], 12, /the last 4 bytes of the data section belong to no tensor/],
    ])('%s are refused', async (name, offsets, bytes, message) => {
      await expect(readSafetensors(await rawFile(`${name.replace(/ /g, '-')}.safetensors`, offsets, bytes))).rejects.toThrow(message);
    });
    test('an exact tiling in any header order loads', async () => {
      const { tensors } = await readSafetensors(
        await rawFile(
          'tiled.safetensors',
          [
            [8, 16],
            [0, 8],
          ],
          16,
        ),
      );
      expect([...tensors.keys()].sort()).toEqual(['t0', 't1']);
      for (const tensor of tensors.values()) tensor.dispose();
    });
    test('a shape whose byte count overflows 64 bits is refused before any arithmetic wraps', async () => {
      const header = JSON.stringify({ huge: { dtype: 'F64', shape: [2 ** 31, 2 ** 31, 4], data_offsets: [0, 8] } });
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(header.length));
      const file = join(tmp, 'overflow.safetensors');
      await writeFile(file, Buffer.concat([length, Buffer.from(header), Buffer.alloc(8)]));
      await expect(readSafetensors(file)).rejects.toThrow(/tensor 'huge' is too large/);
    });
    /** A safetensors file with this header text over `dataBytes` zero bytes. */
    async function withHeader(name: string, header: string, dataBytes: number): Promise<string> {
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
      const file = join(tmp, name);
      await writeFile(file, Buffer.concat([length, Buffer.from(header), Buffer.alloc(dataBytes)]));
      return file;
    }
    test('tensor names are kept as written, "__proto__" and a NUL inside a name included', async () => {
      const header = JSON.stringify({
        __proto__x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        'a\u0000b': { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        a: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      }).replace('__proto__x', '__proto__');
      const { tensors } = await readSafetensors(await withHeader('names.safetensors', header, 12));
      expect([...tensors.keys()].sort()).toEqual(['__proto__', 'a', 'a\u0000b']);
      for (const tensor of tensors.values()) tensor.dispose();
    });
    test('an array longer than any header holds is refused while parsing (a hostile header cannot take ~75× its size)', async () => {
      const file = await withHeader('long-array.safetensors', `{"a":[${Array(5000).fill(0).join(',')}]}`, 0);
      await expect(readSafetensors(file)).rejects.toThrow(/malformed JSON at byte \d+: an array of more than 4096 items/);
    });
    test('a FIFO named model.safetensors is refused at once, not waited on', async () => {
      const dir = await copyFixture('qwen3-tiny', 'fifo');
      await rm(join(dir, 'model.safetensors'));
      execFileSync('mkfifo', [join(dir, 'model.safetensors')]);
      await expect(loadModel(dir)).rejects.toThrow(/model\.safetensors is not a regular file/);
    });
  });

  test('a shard named by the index is missing', async () => {
    const dir = await copyFixture('llama-tiny', 'lost-shard');
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadModel(dir)).rejects.toThrow(/cannot open .*model-00002-of-00002\.safetensors/);
  });

  test('a folder without weights', async () => {
    await expect(loadModel(join(FIXTURES, 'qwen3-tiny-lora'))).rejects.toThrow(ModelConfigError);
    const dir = await copyFixture('qwen3-tiny', 'no-weights');
    await rm(join(dir, 'model.safetensors'));
    await expect(loadModel(dir)).rejects.toThrow(CheckpointError);
  });

  describe('bad configs', () => {
    let base: Record<string, unknown>;
    beforeAll(async () => {
      base = await readJson(join(FIXTURES, 'qwen3-tiny', 'config.json'));
    });
    test.each([
      ['another family', { model_type: 'gpt2' }, /model_type 'gpt2' is not supported/],
      ['heads that do not group', { num_key_value_heads: 3 }, /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/],
      ['a missing size', { vocab_size: undefined }, /x\/config\.json: vocab_size: /],
      ['a negative size', { hidden_size: -64 }, /hidden_size: /],
      ['another activation', { hidden_act: 'gelu' }, /hidden_act 'gelu' is not supported/],
      ['another rope type', { rope_parameters: { rope_type: 'yarn', rope_theta: 1e6, factor: 4 } }, /rope type 'yarn' is not supported/],
      ['incomplete llama3 scaling', { rope_parameters: { rope_type: 'llama3', rope_theta: 1e6, factor: 4 } }, /llama3 rope scaling needs/],
      ['sliding windows', { use_sliding_window: true }, /sliding-window attention/],
      ['an odd head_dim', { head_dim: 15 }, /head_dim must be even/],
    ])('%s', (_, change, message) => {
      expect(() => parseModelConfig({ ...base, ...change }, 'x/config.json')).toThrow(ModelConfigError);
      expect(() => parseModelConfig({ ...base, ...change }, 'x/config.json')).toThrow(message);
    });

    test('config.json that is not JSON', async () => {
      const dir = await copyFixture('qwen3-tiny', 'bad-json');
      await writeFile(join(dir, 'config.json'), '{ "model_type": ');
      await expect(loadModel(dir)).rejects.toThrow(/config\.json: not valid JSON/);
    });
  });

  describe('bad inputs', () => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await loadModel(join(FIXTURES, 'qwen3-tiny'));
    });
    afterAll(() => model.dispose());

    test('token ids outside the vocabulary', async () => {
      await tidy(async () => {
        await expect(model.forward(int64([[1, 83]]))).rejects.toMatchObject({ code: 'ERR_INVALID_ARG', message: expect.stringContaining('[0, 83)') });
      });
    });

    test('float ids, a mask of another shape', async () => {
      await tidy(async () => {
        await expect(model.forward(Tensor.from([[1, 2]]))).rejects.toThrow(/input_ids must be a \[batch, time\] integer tensor/);
        await expect(model.forward(int64([[1, 2]]), int64([[1, 1, 1]]))).rejects.toThrow(/attention_mask has shape \[1, 3\]/);
      });
    });

    test('an aborted call and a disposed model reject', async () => {
      await tidy(async () => {
        const controller = new AbortController();
        controller.abort();
        await expect(model.forward(int64([[1, 2]]), undefined, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
      });
      const other = await loadModel(join(FIXTURES, 'qwen3-tiny'));
      other.dispose();
      expect(other.isDisposed).toBe(true);
      await tidy(async () => {
        await expect(other.forward(int64([[1, 2]]))).rejects.toThrow(/forward: the model was disposed/);
      });
    });
  });
});

test('no tensor outlives its scope', async () => {
  const before = liveTensors();
  const model = await loadModel(join(FIXTURES, 'qwen3-tiny'));
  await tidy(async () => {
    const { inputIds, attentionMask } = padBatch([[1, 2, 3], [4]]);
    await model.tokenLogprobs(inputIds, attentionMask);
    model.parameters();
  });
  model.dispose();
  expect(liveTensors()).toBe(before);
});
