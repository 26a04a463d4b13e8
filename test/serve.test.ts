// `prefix-rl serve` through the official `openai` client on loopback: models, completions (text and token-id
// prompts, n > 1, logprobs, stop strings, seeds), chat (plain and streamed), 16 concurrent clients batched (each
// keeping its token budget), stop strings ending the token ids, bad requests refused in OpenAI's error shape, a
// client that disconnects mid-stream, /v1/score (the library's scoreSteps, which equals rm eval's step scores),
// /v1/reload (weights, positions and tokenizer), and a SIGTERM that lets an in-flight request finish.
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { evaluateProcessBench, evaluateStepVerification, processBenchF1, scoreSteps, rerank, stepSequences } from '../lib/eval/index.js';
import { layoutSteps, type TraceFormat } from '../lib/task/render.js';
import { initModel, loadModel, type CausalLM } from '../lib/model/index.js';
import { ModelServer } from '../lib/serve/index.js';
import { makeProcessBenchSets } from '../lib/task/index.js';
import { loadTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
jest.setTimeout(60_000);

let server: ModelServer;
let client: OpenAI;
let policy: CausalLM;
let tokenizer: Tokenizer;
beforeAll(async () => {
  server = await ModelServer.start({ model: FIXTURE, rewardModel: FIXTURE, reference: FIXTURE, port: 0, allowReload: true, maxN: 8 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  policy = await loadModel(FIXTURE);
  tokenizer = await loadTokenizer(FIXTURE);
});
afterAll(async () => {
  await server?.close();
  policy?.dispose();
});

const chat = [{ role: 'user' as const, content: 'Compute 2 +3 step by step.' }];

/** A task ProcessBench row as a text and its step ends, laid out as rm eval lays it out. */
function laidOut(record: { steps: string[]; trace_format?: unknown }) {
  const { response, stepEnds } = layoutSteps(record.steps, record.trace_format as TraceFormat);
  return { text: response, stepEnds };
}

test('models and health', async () => {
  const models = await client.models.list();
  expect(models.data.map((m) => m.id)).toEqual(['qwen3-tiny']);
  expect(await (await fetch(`${server.url}/health`)).json()).toEqual({ status: 'ok' });
});

test('completions: a seeded request is the library’s sampling; n, logprobs and token ids agree with each other', async () => {
  const prompt = tokenizer.encodeChat(chat, { addGenerationPrompt: true });
  const response = await client.completions.create({ model: 'qwen3-tiny', prompt, max_tokens: 8, n: 3, seed: 7, logprobs: 2, temperature: 1 });
  const expected = await policy.generate([prompt, prompt, prompt], { maxNewTokens: 8, seed: 7, topLogprobs: 2 });
  expect(response.choices).toHaveLength(3);
  response.choices.forEach((choice, i) => {
    const ids = (choice as unknown as { token_ids: number[] }).token_ids;
    expect(ids).toEqual(expected[i].tokens);
    expect(choice.text).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));
    expect(choice.logprobs!.token_logprobs).toEqual(expected[i].logprobs.map((v) => expect.closeTo(v, 6)));
    expect(choice.logprobs!.top_logprobs![0]).toHaveProperty(tokenizer.decode([expected[i].topTokens![0][0]]));
    expect(choice.finish_reason).toBe(expected[i].finishReason === 'length' ? 'length' : 'stop');
  });
  // The prompt counts once, however many choices it has (as OpenAI and vLLM count).
  expect(response.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: 24, total_tokens: prompt.length + 24 });
  // Greedy on a text prompt; a stop string cuts the text before it (the token ids end with the one completing it).
  const greedy = await client.completions.create({ model: 'qwen3-tiny', prompt: 'Compute 1 +1', max_tokens: 6, temperature: 0 });
  const text = greedy.choices[0].text;
  expect(text.length).toBeGreaterThan(1);
  const stopped = await client.completions.create({
    model: 'qwen3-tiny',
    prompt: 'Compute 1 +1',
    max_tokens: 6,
    temperature: 0,
    stop: [text.slice(1, 2)],
  });
  expect(stopped.choices[0].text).toBe(text.slice(0, text.indexOf(text.slice(1, 2))));
  expect(stopped.choices[0].finish_reason).toBe('stop');
});

test('chat: the streamed deltas add up to the answer the same seed gives without streaming', async () => {
  const plain = await client.chat.completions.create({
    model: 'qwen3-tiny',
    messages: chat,
    max_tokens: 10,
    seed: 3,
    logprobs: true,
    top_logprobs: 2,
  });
  const stream = await client.chat.completions.create({
    model: 'qwen3-tiny',
    messages: chat,
    max_tokens: 10,
    seed: 3,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish: string | null = null;
  let usage: unknown;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
    usage = chunk.usage ?? usage;
  }
  expect(text).toBe(plain.choices[0].message.content);
  expect(finish).toBe(plain.choices[0].finish_reason);
  expect(usage).toEqual(plain.usage);
  expect(plain.choices[0].logprobs!.content!.length).toBe((plain.choices[0] as unknown as { token_ids: number[] }).token_ids.length);
  expect(plain.choices[0].logprobs!.content![0].top_logprobs).toHaveLength(2);
});

test('16 concurrent clients are served, in fewer sampling calls than requests', async () => {
  const before = server.sampler.batches;
  const answers = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      client.chat.completions.create({ model: 'qwen3-tiny', messages: [{ role: 'user', content: `Compute ${i} +1` }], max_tokens: 6 }),
    ),
  );
  expect(answers.every((a) => a.choices[0].message.content !== null)).toBe(true);
  expect(server.sampler.batches - before).toBeLessThan(16);
});

test('a request keeps its own token budget whatever it is batched with', async () => {
  // 3 + 300 and 500 + 5 tokens each fit the model's 512 positions; in one call the long prompt would leave the short
  // one 12 new tokens.
  const ask = (prompt: number[], max_tokens: number) =>
    client.completions.create({ model: 'qwen3-tiny', prompt, max_tokens, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  const longPrompt = Array.from({ length: 500 }, () => 4);
  // Sent together, two requests that fit beside each other share one sampling call (so the two below arrive in one
  // gathering window too); the two that do not fit take two.
  let before = server.sampler.batches;
  await Promise.all([ask([4, 5, 6], 8), ask(longPrompt.slice(0, 100), 8)]);
  expect(server.sampler.batches - before).toBe(1);
  before = server.sampler.batches;
  const [short, long] = await Promise.all([ask([4, 5, 6], 300), ask(longPrompt, 5)]);
  expect(server.sampler.batches - before).toBe(2);
  const ids = (answer: OpenAI.Completion) => (answer.choices[0] as unknown as { token_ids: number[] }).token_ids;
  expect(ids(short)).toHaveLength(300);
  expect(ids(long)).toHaveLength(5);
  expect([short.choices[0].finish_reason, long.choices[0].finish_reason]).toEqual(['length', 'length']);
});

test('a stop string found in the text ends the token ids, log-probs and usage at the token completing it', async () => {
  // Sampled special tokens are skipped in the text: two characters with one between them are adjacent in the text
  // but not in the tokens, so the stop string is found in the text while sampling goes on past it.
  const request = { model: 'qwen3-tiny', prompt: 'Compute 1 +1', max_tokens: 200, seed: 5, ignore_eos: true, logprobs: 0 };
  type Choice = OpenAI.CompletionChoice & { token_ids: number[] };
  const [free] = (await client.completions.create(request as OpenAI.CompletionCreateParamsNonStreaming)).choices as Choice[];
  const text = tokenizer.decode(free.token_ids, { skipSpecialTokens: true });
  // The fixture's tokens are single characters: the k-th character of the text is the token at visible[k].
  const visible = free.token_ids.flatMap((id, i) => (tokenizer.decode([id], { skipSpecialTokens: true }) ? [i] : []));
  const k = visible.findIndex(
    (at, c) => c > 0 && at - visible[c - 1] > 1 && at < free.token_ids.length - 1 && text.indexOf(text.slice(c - 1, c + 1)) === c - 1,
  );
  expect(k).toBeGreaterThan(0);
  const stopped = await client.completions.create({ ...request, stop: text.slice(k - 1, k + 1) } as OpenAI.CompletionCreateParamsNonStreaming);
  const [choice] = stopped.choices as Choice[];
  const kept = free.token_ids.slice(0, visible[k] + 1);
  expect(choice.text).toBe(text.slice(0, k - 1));
  expect(choice.finish_reason).toBe('stop');
  expect(choice.token_ids).toEqual(kept);
  expect(choice.logprobs!.tokens).toHaveLength(kept.length);
  expect(choice.logprobs!.token_logprobs).toEqual(free.logprobs!.token_logprobs!.slice(0, kept.length));
  expect(stopped.usage!.completion_tokens).toBe(kept.length);
});

test('bad requests get 4xx answers in OpenAI’s error shape, naming the field', async () => {
  const refused = async (request: Promise<unknown>, status: number, message: RegExp, param?: string) => {
    const error = (await request.then(
      () => undefined,
      (err: unknown) => err,
    )) as InstanceType<typeof OpenAI.APIError>;
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(status);
    expect(error.message).toMatch(message);
    if (param) expect(error.param).toBe(param);
    // No path of the server's in a refusal.
    expect(error.message).not.toContain(process.cwd());
  };
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x', max_tokens: 10 ** 6 }), 400, /max_tokens 1000000 exceeds/);
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x', n: 9 }), 400, /n 9 exceeds this server's limit of 8/);
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: [10 ** 6] }), 400, /outside the model's vocabulary/);
  await refused(client.completions.create({ model: 'other', prompt: 'x' }), 404, /the model 'other' does not exist/);
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x', echo: true }), 400, /'echo' is not supported/);
  await refused(client.chat.completions.create({ model: 'qwen3-tiny', messages: [] }), 400, /messages/);
  await refused(client.chat.completions.create({ model: 'qwen3-tiny', messages: chat, temperature: -1 }), 400, /temperature/);
  // A character the fixture's tokenizer cannot encode, in a prompt, a stop string or a message.
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x€' }), 400, /"€" \(U\+20AC\)/, 'prompt');
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: ['x', '€'] }), 400, /"€"/, 'prompt');
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x', stop: ['a', '€'] }), 400, /"€"/, 'stop');
  await refused(client.chat.completions.create({ model: 'qwen3-tiny', messages: [{ role: 'user', content: '€' }] }), 400, /"€"/, 'messages');
  // An empty stop string would end every choice at once.
  await refused(client.completions.create({ model: 'qwen3-tiny', prompt: 'x', stop: '' }), 400, /empty stop string/, 'stop');
  await refused(client.chat.completions.create({ model: 'qwen3-tiny', messages: chat, stop: ['a', ''] }), 400, /empty stop string/, 'stop');
  const body = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": ' });
  expect(body.status).toBe(400);
  expect(await body.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  const huge = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'x'.repeat(5 << 20) }),
  });
  expect(huge.status).toBe(413);
});

test('a client that disconnects mid-stream stops its sampling, and the server goes on serving', async () => {
  const abandoned = server.sampler.abandoned;
  // Seed 1 samples 168 tokens before its EOS: the client leaves long before (leaving the loop closes the stream).
  const stream = await client.chat.completions.create({ model: 'qwen3-tiny', messages: chat, max_tokens: 200, seed: 1, stream: true });
  let chunks = 0;
  for await (const _ of stream) if (++chunks === 3) break;
  for (let wait = 0; server.sampler.abandoned === abandoned && wait < 100; wait++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(server.sampler.abandoned).toBe(abandoned + 1);
  const after = await client.chat.completions.create({ model: 'qwen3-tiny', messages: chat, max_tokens: 4 });
  expect(after.choices[0].finish_reason).toBeDefined();
});

test('/v1/score is scoreSteps, whose scores and first errors are rm eval’s', async () => {
  const rewardModel = await initModel({ ...JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')), initializer_range: 0.5 }, { seed: 5 });
  try {
    const models = { rewardModel, reference: policy, tokenizer };
    const records = makeProcessBenchSets(2, 6, ['A']).get('A')!;
    const sequences = stepSequences(tokenizer, records);
    const report = await evaluateStepVerification(rewardModel, policy, sequences, { coef: 1 });
    const scored = await Promise.all(records.map((r) => scoreSteps(models, r.problem, laidOut(r), { coef: 1, threshold: 0.5 })));
    // Per step: the scores rm eval computes from the same log ratios.
    const items = scored.map((s, i) => ({ label: sequences[i].label, steps: s.scores.sum.length }));
    expect(items.map((x) => x.steps)).toEqual(sequences.map((s) => s.stepEnds.length));
    const f1 = processBenchF1(
      records.map((r) => r.label),
      scored.map((s) => s.firstError),
    ).f1;
    expect(f1).toBeCloseTo(report.rewardModel.sum.f1AtHalf, 12);
    const modes = evaluateProcessBench(
      await Promise.all(
        sequences.map(async (s) => {
          const [[p], [r]] = [await rewardModel.sequenceLogprobs([s.tokens]), await policy.sequenceLogprobs([s.tokens])];
          return { label: s.label, rawReward: p.map((v, j) => v - r[j]), firstBoundary: s.promptLength - 1, stepEnds: s.stepEnds.map((e) => e - 1) };
        }),
      ),
      { coef: 1 },
    ).modes;
    for (const mode of ['sum', 'sum_diff', 'mean', 'mean_diff'] as const) {
      scored.forEach((s, i) => expect(s.scores[mode]).toEqual(modes[mode].scores[i].map((v) => expect.closeTo(v, 9))));
    }
    // The server's answer for the served pair (π_φ = π_ref: every log ratio 0, every score ½).
    const answer = await (
      await fetch(`${server.url}/v1/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ problem: records[0].problem, steps: ['a', 'b'] }),
      })
    ).json();
    expect(answer).toMatchObject({ object: 'step_scores', scores: { sum: [0.5, 0.5] }, prefix_values: [0, 0], first_error: -1 });
    const ranked = await rerank(models, records[0].problem, ['1', '22', '333']);
    expect(ranked.map((r) => r.index).sort()).toEqual([0, 1, 2]);
    expect(ranked[0].score).toBeGreaterThanOrEqual(ranked[2].score);
    await expect(scoreSteps(models, 'p', { text: 'abc', stepEnds: [2, 2] })).rejects.toThrow(/increasing/);
  } finally {
    rewardModel.dispose();
  }
});

test('/v1/reload swaps the weights: the served log-probs become the new checkpoint’s', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-reload-'));
  const other = await initModel(JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')), { seed: 11 });
  try {
    await other.save(join(dir, 'policy'));
    const prompt = tokenizer.encodeChat(chat, { addGenerationPrompt: true });
    const ask = async () => {
      const answer = await client.completions.create({ model: 'qwen3-tiny', prompt, max_tokens: 5, seed: 1, logprobs: 0 });
      const choice = answer.choices[0] as unknown as { token_ids: number[]; logprobs: { token_logprobs: number[] } };
      return choice;
    };
    const before = await ask();
    const reloaded = await fetch(`${server.url}/v1/reload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: join(dir, 'policy') }),
    });
    expect(reloaded.status).toBe(200);
    const after = await ask();
    const [expected] = await other.sequenceLogprobs([[...prompt, ...after.token_ids]]);
    expect(after.logprobs.token_logprobs).toEqual(expected.slice(prompt.length - 1).map((v) => expect.closeTo(v, 4)));
    expect(after.logprobs.token_logprobs).not.toEqual(before.logprobs.token_logprobs);
    const bad = await fetch(`${server.url}/v1/reload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: join(dir, 'none') }),
    });
    expect(bad.status).toBe(400);
  } finally {
    other.dispose();
    // Back to the fixture for the tests after this one.
    await fetch(`${server.url}/v1/reload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: FIXTURE }),
    });
    await rm(dir, { recursive: true, force: true });
  }
});

test('/v1/reload follows the new model’s positions and tokenizer', async () => {
  const { copyFile, mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'prefix-rl-reload-'));
  const reload = (model: string) =>
    fetch(`${server.url}/v1/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model }) });
  const maxModelLen = async () => ((await client.models.list()).data[0] as unknown as { max_model_len: number }).max_model_len;
  try {
    // A model of 64 positions, with the fixture's tokenizer under another chat template.
    const small = await initModel({ ...JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')), max_position_embeddings: 64 }, { seed: 3 });
    await small.save(join(dir, 'policy'));
    small.dispose();
    await copyFile(join(FIXTURE, 'tokenizer.json'), join(dir, 'policy', 'tokenizer.json'));
    await writeFile(join(dir, 'policy', 'chat_template.jinja'), "{{- 'Q' + messages[0]['content'] + '<sep>' -}}");
    expect((await reload(join(dir, 'policy'))).status).toBe(200);
    expect(await maxModelLen()).toBe(64);
    const error = await client.completions.create({ model: 'qwen3-tiny', prompt: Array.from({ length: 100 }, () => 4) }).catch((err: unknown) => err);
    expect(error).toMatchObject({ status: 400, message: expect.stringMatching(/knows 64 positions/) });
    const answer = await client.chat.completions.create({ model: 'qwen3-tiny', messages: chat, max_tokens: 2 });
    expect((answer as unknown as { prompt_token_ids: number[] }).prompt_token_ids[0]).toBe(tokenizer.tokenToId('Q'));
  } finally {
    // Back to the fixture for the tests after this one.
    expect((await reload(FIXTURE)).status).toBe(200);
    await rm(dir, { recursive: true, force: true });
  }
  expect(await maxModelLen()).toBe(512);
});

test('SIGTERM lets the in-flight request finish, then the server exits', async () => {
  const child = spawn(process.execPath, ['bin/prefix-rl.js', 'serve', '--model', FIXTURE, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const found = /listening on (\S+)/.exec(stderr);
      if (found) resolve(found[1]);
    });
    child.on('exit', () => reject(new Error(stderr)));
  });
  const remote = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const inFlight = remote.completions.create({ model: 'qwen3-tiny', prompt: 'Compute 1 +1', max_tokens: 300, temperature: 1 });
  await new Promise((resolve) => setTimeout(resolve, 150));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  child.kill('SIGTERM');
  const answer = await inFlight;
  expect(answer.choices[0].finish_reason).toBeDefined();
  expect(await exited).toBe(0);
  expect(stderr).toMatch(/SIGTERM, draining/);
});
