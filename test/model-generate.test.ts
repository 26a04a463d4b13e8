// Sampling with the KV cache: greedy decoding against transformers' generate, cached log-probs against a full
// forward, seeds, stopping, candidates, and the sampled distribution itself.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, padBatch, type CausalLM, type Generation } from '../lib/model/index.js';
import { Tensor, liveTensors, tidy } from '../lib/tensor/index.js';

const FIXTURES = join(process.cwd(), 'fixtures/models');

interface GreedyReference {
  prompts: number[][];
  max_new_tokens: number;
  eos_token_id: number;
  tokens: number[][];
}

const greedyReference = async (name: string): Promise<GreedyReference> =>
  (JSON.parse(await readFile(join(FIXTURES, name, 'reference.json'), 'utf8')) as { greedy: GreedyReference }).greedy;

/** log softmax(logits / temperature) of each generated token under a plain forward of prompt + generation. */
async function forwardLogprobs(model: CausalLM, prompt: number[], generation: Generation, temperature = 1): Promise<number[]> {
  return tidy(async () => {
    const sequence = [...prompt, ...generation.tokens];
    const logits = await model.forward(Tensor.from([sequence], undefined, { dtype: 'int64' }));
    const logprobs = logits.div(temperature).logSoftmax(-1).toNested() as number[][][];
    return generation.tokens.map((token, i) => logprobs[0][prompt.length - 1 + i][token]);
  });
}

describe.each(['qwen3-tiny', 'llama-tiny'])('%s', (name) => {
  let model: CausalLM;
  let greedy: GreedyReference;
  beforeAll(async () => {
    model = await loadModel(join(FIXTURES, name));
    greedy = await greedyReference(name);
  });
  afterAll(() => model.dispose());

  test('greedy decoding of a left-padded batch matches transformers', async () => {
    const out = await model.generate(greedy.prompts, { maxNewTokens: greedy.max_new_tokens, temperature: 0, eosTokenIds: [greedy.eos_token_id] });
    expect(out.map((g) => g.tokens)).toEqual(greedy.tokens);
    expect(out.map((g) => g.finishReason)).toEqual(greedy.tokens.map((t) => (t.at(-1) === greedy.eos_token_id ? 'eos' : 'length')));
  });

  test('sampled log-probs from the cache equal a full forward, at any temperature', async () => {
    for (const temperature of [1, 0.7]) {
      const out = await model.generate(greedy.prompts, { maxNewTokens: 6, temperature, seed: 11, eosTokenIds: [] });
      for (const [row, generation] of out.entries()) {
        expect(generation.tokens).toHaveLength(6);
        const expected = await forwardLogprobs(model, greedy.prompts[row], generation, temperature);
        generation.logprobs.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 4));
      }
    }
  });
});

describe('sampling controls', () => {
  let model: CausalLM;
  let prompts: number[][];
  let greedyTokens: number[][];
  beforeAll(async () => {
    model = await loadModel(join(FIXTURES, 'qwen3-tiny'));
    const reference = await greedyReference('qwen3-tiny');
    prompts = reference.prompts;
    greedyTokens = reference.tokens;
  });
  afterAll(() => model.dispose());

  const tokensOf = (out: Generation[]) => out.map((g) => g.tokens);

  test('the same seed gives the same tokens; another seed other tokens', async () => {
    const options = { maxNewTokens: 8, temperature: 1.5, eosTokenIds: [] };
    const first = await model.generate(prompts, { ...options, seed: 5 });
    expect(tokensOf(await model.generate(prompts, { ...options, seed: 5 }))).toEqual(tokensOf(first));
    expect(tokensOf(await model.generate(prompts, { ...options, seed: 6 }))).not.toEqual(tokensOf(first));
    expect(tokensOf(first)).not.toEqual(greedyTokens);
  });

  test('onStep streams every row’s tokens as sampled, all before the result; a throwing onStep fails the call, leaking nothing', async () => {
    const before = liveTensors();
    const steps: { tokens: number[]; logprobs: number[]; produced: number[] }[] = [];
    const out = await model.generate(prompts, {
      maxNewTokens: 8,
      seed: 2,
      stopSequences: [[greedyTokens[0][1]]],
      onStep: (tokens, logprobs, produced) => steps.push({ tokens, logprobs, produced }),
    });
    const streamed = prompts.map((_, row) => steps.filter((s) => s.produced[row] === 1).map((s) => s.tokens[row]));
    expect(streamed).toEqual(tokensOf(out));
    prompts.forEach((_, row) =>
      expect(steps.filter((s) => s.produced[row] === 1).map((s) => s.logprobs[row])).toEqual(out[row].logprobs.map((v) => expect.closeTo(v, 6))),
    );
    expect(tokensOf(await model.generate(prompts, { maxNewTokens: 8, seed: 2, stopSequences: [[greedyTokens[0][1]]] }))).toEqual(tokensOf(out));
    await expect(
      model.generate(prompts, {
        maxNewTokens: 4,
        onStep: () => {
          throw new Error('the consumer failed');
        },
      }),
    ).rejects.toThrow(/the consumer failed/);
    expect(liveTensors()).toBe(before);
  });

  test('top-k 1 and a tiny top-p are greedy', async () => {
    expect(tokensOf(await model.generate(prompts, { maxNewTokens: 8, topK: 1, seed: 1, eosTokenIds: [] }))).toEqual(greedyTokens);
    expect(tokensOf(await model.generate(prompts, { maxNewTokens: 8, topP: 1e-6, seed: 1, eosTokenIds: [] }))).toEqual(greedyTokens);
  });

  test('EOS ids and stop sequences end a row, included in its tokens', async () => {
    // Greedy qwen3-tiny continues the three prompts with 4 4 4 46 …, 17 17 17 …, 9 9 12 ….
    expect(greedyTokens[0].slice(0, 4)).toEqual([4, 4, 4, 46]);
    const byEos = await model.generate(prompts, { maxNewTokens: 8, temperature: 0, eosTokenIds: [46] });
    expect(byEos.map((g) => [g.tokens, g.finishReason])).toEqual([
      [[4, 4, 4, 46], 'eos'],
      [greedyTokens[1], 'length'],
      [greedyTokens[2], 'length'],
    ]);
    const byStop = await model.generate(prompts, {
      maxNewTokens: 8,
      temperature: 0,
      eosTokenIds: [],
      stopSequences: [
        [4, 46],
        [17, 17, 17],
      ],
    });
    expect(byStop.map((g) => [g.tokens, g.finishReason])).toEqual([
      [[4, 4, 4, 46], 'stop'],
      [[17, 17, 17], 'stop'],
      [greedyTokens[2], 'length'],
    ]);
    expect(byStop[1].logprobs).toHaveLength(3);
  });

  test('the batch stops when every row has', async () => {
    const out = await model.generate([prompts[0]], { maxNewTokens: 50, temperature: 0, eosTokenIds: [46] });
    expect(out[0].tokens).toEqual([4, 4, 4, 46]);
  });

  test('top-K candidates: most likely first, the greedy token on top', async () => {
    const [generation] = await model.generate([prompts[0]], { maxNewTokens: 5, temperature: 0, topLogprobs: 4, eosTokenIds: [] });
    expect(generation.topTokens).toHaveLength(5);
    generation.topTokens!.forEach((candidates, i) => {
      expect(candidates).toHaveLength(4);
      expect(candidates[0]).toBe(generation.tokens[i]);
      expect(generation.topLogprobs![i][0]).toBeCloseTo(generation.logprobs[i], 6);
      const values = generation.topLogprobs![i];
      expect([...values].sort((a, b) => b - a)).toEqual(values);
    });
  });

  test('samples follow the top-k-truncated distribution', async () => {
    const rows = 3000;
    const prompt = [1, 20, 31];
    const out = await model.generate(new Array(rows).fill(prompt), { maxNewTokens: 1, topK: 4, seed: 3, eosTokenIds: [] });
    const expected = await tidy(async () => {
      const logits = await model.forward(Tensor.from([prompt], undefined, { dtype: 'int64' }));
      const [values, indices] = logits.select(1, 2).topk(4);
      const probs = values.softmax(-1).toNumbers();
      return new Map(indices.toNumbers().map((token, i) => [token, probs[i]]));
    });
    const counts = new Map<number, number>();
    for (const { tokens } of out) counts.set(tokens[0], (counts.get(tokens[0]) ?? 0) + 1);
    for (const token of counts.keys()) expect(expected.has(token)).toBe(true);
    for (const [token, probability] of expected) {
      // 4.5 standard deviations of a binomial frequency at n = 3000.
      const tolerance = 4.5 * Math.sqrt((probability * (1 - probability)) / rows) + 1e-3;
      expect(Math.abs((counts.get(token) ?? 0) / rows - probability)).toBeLessThan(tolerance);
    }
  });

  test('bad options and prompts are refused with clear errors', async () => {
    await expect(model.generate(prompts, { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be at least 1/);
    await expect(model.generate(prompts, { maxNewTokens: 2, topP: 0 })).rejects.toThrow(/topP must be in \(0, 1\]/);
    await expect(model.generate(prompts, { maxNewTokens: 2, temperature: -1 })).rejects.toThrow(/temperature must be/);
    await expect(model.generate(prompts, { maxNewTokens: 2, eosTokenIds: [83] })).rejects.toThrow(/eosTokenIds holds token 83/);
    await expect(model.generate(prompts, { maxNewTokens: 2, stopSequences: [[]] })).rejects.toThrow(/empty sequence/);
    await expect(model.generate([[1, 99]], { maxNewTokens: 2 })).rejects.toThrow(/input_ids must lie in \[0, 83\)/);
    await expect(model.generate([[]], { maxNewTokens: 2 })).rejects.toThrow(/at least one token/);
  });

  test('right-padded prompts are refused by the native sampler', async () => {
    await tidy(async () => {
      const { inputIds, attentionMask } = padBatch([[1, 2, 3], [1]], { side: 'right' });
      const native = (model as unknown as { native: { generate: (...args: unknown[]) => Promise<unknown> } }).native;
      await expect(native.generate(inputIds.native, attentionMask.native, { maxNewTokens: 1 })).rejects.toThrow(/prompts must be left-padded/);
    });
  });

  test('aborting rejects, and no tensor leaks', async () => {
    const before = liveTensors();
    const controller = new AbortController();
    controller.abort();
    await expect(model.generate(prompts, { maxNewTokens: 4, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    await model.generate(prompts, { maxNewTokens: 3, topLogprobs: 2 });
    expect(liveTensors()).toBe(before);
  });
});

test('sequences past max_position_embeddings are refused; generation stops at the last position', async () => {
  const model = await loadModel(join(process.cwd(), 'fixtures/models/qwen3-tiny')); // max_position_embeddings 512
  try {
    const long = Array.from({ length: 513 }, (_, i) => i % 50);
    const { inputIds, attentionMask } = padBatch([long]);
    await expect(tidy(() => model.forward(inputIds, attentionMask, { noGrad: true }))).rejects.toThrow(
      /an input of 513 tokens is longer than this model's max_position_embeddings \(512\)/,
    );
    await expect(tidy(() => model.tokenLogprobs(inputIds, attentionMask, { noGrad: true }))).rejects.toThrow(/513 tokens/);
    inputIds.dispose();
    attentionMask.dispose();
    await expect(model.generate([long.slice(0, 512)], { maxNewTokens: 4 })).rejects.toThrow(/a prompt \(with one new token\) of 513 tokens/);
    const [near] = await model.generate([long.slice(0, 508)], { maxNewTokens: 50, eosTokenIds: [], seed: 1 });
    expect(near.tokens).toHaveLength(4);
    expect(near.finishReason).toBe('length');
  } finally {
    model.dispose();
  }
});

test("generation stops at generation_config.json's EOS ids too, as transformers and vLLM do", async () => {
  const fixture = join(process.cwd(), 'fixtures/models/qwen3-tiny');
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-generation-eos-'));
  const model = await loadModel(fixture);
  try {
    const prompt = [[5, 6, 7]];
    const [free] = await model.generate(prompt, { maxNewTokens: 3, temperature: 0, eosTokenIds: [] });
    expect(free.tokens[0]).not.toBe(2); // not config.json's EOS already
    // A checkpoint whose generation config also ends on the first token this prompt produces greedily.
    await cp(fixture, dir, { recursive: true });
    const generation = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8'));
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ ...generation, eos_token_id: [2, free.tokens[0]] }));
    const stopping = await loadModel(dir);
    try {
      expect(stopping.config.eosTokenIds).toEqual([2, free.tokens[0]]);
      const [stopped] = await stopping.generate(prompt, { maxNewTokens: 3, temperature: 0 });
      expect(stopped).toMatchObject({ tokens: [free.tokens[0]], finishReason: 'eos' });
    } finally {
      stopping.dispose();
    }
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 'two' }));
    await expect(loadModel(dir)).rejects.toThrow(/generation_config\.json: eos_token_id must be an id or a list of ids/);
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
