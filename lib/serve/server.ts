// `prefix-rl serve`: a policy behind an OpenAI-compatible HTTP API (fastify) — /v1/completions and
// /v1/chat/completions (text or token ids in, token ids out as vLLM returns them, SSE streaming), /v1/models,
// /health — and prefix-rl's own /v1/score (a solution's step scores from an implicit reward model) and /v1/reload
// (new weights from a checkpoint folder: how an RL trainer keeps the server on its policy). Requests sampling alike
// are batched (Sampler); every request is validated and refused with OpenAI's error shape; SIGTERM drains.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { scoreSteps } from '../eval/score.js';
import { loadModel, type CausalLM, type ModelDType } from '../model/index.js';
import type { DeviceName } from '../tensor/index.js';
import { loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
import {
  atStopString,
  ChatRequest,
  chatLogprobs,
  checkPrompt,
  CompletionRequest,
  completionLogprobs,
  completionPrompts,
  encodeText,
  firstStop,
  parseRequest,
  ReloadRequest,
  RequestError,
  sampleText,
  ScoreRequest,
  stopStrings,
  streamableText,
  tokenBudget,
  type Limits,
} from './protocol.js';
import { Sampler, type Sample, type SampleRequest } from './sampler.js';

export interface ServeOptions {
  /** The policy's checkpoint folder (with its tokenizer). */
  model: string;
  /** π_φ and π_ref for /v1/score (both or neither). */
  rewardModel?: string;
  reference?: string;
  host?: string;
  /** 0: any free port (see ModelServer.url). Default 8000. */
  port?: number;
  device?: DeviceName;
  dtype?: ModelDType;
  /** The model's id in /v1/models and the answers (default: the folder's name). */
  servedModelName?: string;
  /** Largest max_tokens accepted (default 4096) and n (default 16); largest body (default 4 MiB). */
  maxTokens?: number;
  maxN?: number;
  maxBodyBytes?: number;
  /** Rows of one batched sampling call (default 64), and how long an idle server waits for more requests to batch (default 5 ms). */
  maxBatchRows?: number;
  batchWindowMs?: number;
  /** Enable /v1/reload, which reads any checkpoint folder the server can read (default false). */
  allowReload?: boolean;
  /** Log each request (fastify's logger, JSON lines on stdout). */
  log?: boolean;
}

export class ModelServer {
  private constructor(
    private readonly status: { draining: boolean },
    private readonly app: FastifyInstance,
    private readonly state: { policy: CausalLM; scorer?: { rewardModel: CausalLM; reference: CausalLM; tokenizer: Tokenizer } },
    readonly sampler: Sampler,
    readonly url: string,
  ) {}

  /** Loads the models and listens; resolves once the server answers. */
  static async start(options: ServeOptions): Promise<ModelServer> {
    if (!options.rewardModel !== !options.reference) throw new Error('give both --reward-model and --reference (π_φ and its π_ref), or neither');
    const placement = { device: options.device ?? 'cpu', dtype: options.dtype ?? 'float32' };
    const tokenizer = await loadTokenizer(options.model);
    const policy = await loadModel(options.model, placement);
    const state: ModelServer['state'] = { policy };
    if (options.rewardModel) {
      state.scorer = {
        rewardModel: await loadModel(options.rewardModel, placement),
        reference: await loadModel(options.reference!, placement),
        tokenizer,
      };
    }
    const name = options.servedModelName ?? basename(resolve(options.model));
    const limits: Limits = {
      maxTokens: options.maxTokens ?? 4096,
      maxN: options.maxN ?? 16,
      maxPositions: policy.config.maxPositionEmbeddings,
      vocabSize: policy.config.vocabSize,
    };
    const sampler = new Sampler(() => state.policy, { maxBatchRows: options.maxBatchRows, gatherMs: options.batchWindowMs });
    const app = Fastify({ bodyLimit: options.maxBodyBytes ?? 4 << 20, logger: options.log ?? false });
    const status = { draining: false };
    const api = new Api(name, { tokenizer, limits }, sampler);

    app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
      const refused =
        error instanceof RequestError
          ? error
          : error.statusCode && error.statusCode < 500
            ? new RequestError(error.statusCode, error.message)
            : new RequestError(500, `internal error: ${error.message}`);
      void reply.status(refused.status).send(refused.body());
    });
    app.setNotFoundHandler(
      (request, reply) => void reply.status(404).send(new RequestError(404, `no route ${request.method} ${request.url}`).body()),
    );
    app.addHook('onRequest', async () => {
      if (status.draining) throw new RequestError(503, 'the server is shutting down');
    });

    app.get('/health', async () => ({ status: 'ok' }));
    app.get('/v1/models', async () => ({
      object: 'list',
      data: [
        { id: name, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'prefix-rl', max_model_len: api.served.limits.maxPositions },
      ],
    }));
    app.post('/v1/completions', (request, reply) => api.completions(request, reply));
    app.post('/v1/chat/completions', (request, reply) => api.chat(request, reply));
    app.post('/v1/score', async (request) => {
      const body = parseRequest(ScoreRequest, request.body);
      api.checkModel(body.model);
      if (!state.scorer) throw new RequestError(404, 'this server has no reward model: start it with --reward-model and --reference');
      const solution = body.steps ?? { text: body.text!, stepEnds: body.step_ends! };
      let report;
      try {
        report = await scoreSteps(state.scorer, body.problem, solution, {
          mode: body.mode,
          threshold: body.threshold,
          coef: body.coef,
          beta: body.beta,
        });
      } catch (err) {
        throw new RequestError(400, (err as Error).message);
      }
      return {
        object: 'step_scores',
        model: name,
        scores: report.scores,
        prefix_values: report.prefixValues,
        first_error: report.firstError,
        mode: report.mode,
        threshold: report.threshold,
      };
    });
    app.post('/v1/reload', async (request) => {
      if (!options.allowReload) throw new RequestError(403, 'reloading is off: start the server with --allow-reload');
      const { model = options.model, adapter } = parseRequest(ReloadRequest, request.body);
      const started = performance.now();
      let next: CausalLM;
      try {
        next = await loadModel(model, placement);
      } catch (err) {
        throw new RequestError(400, `cannot load ${model}: ${(err as Error).message}`, 'model');
      }
      if (adapter) {
        try {
          await next.loadAdapter(adapter);
        } catch (err) {
          next.dispose();
          throw new RequestError(400, `cannot load the adapter ${adapter}: ${(err as Error).message}`, 'adapter');
        }
      }
      const { vocabSize } = api.served.limits;
      if (next.config.vocabSize !== vocabSize) {
        next.dispose();
        throw new RequestError(400, `${model} has a vocabulary of ${next.config.vocabSize}, the served model ${vocabSize}`, 'model');
      }
      // What the start took from the model follows it: its positions, and its folder's tokenizer (a checkpoint saved
      // without one, as a trainer may write, keeps the served tokenizer, whose vocabulary it shares).
      let { tokenizer: nextTokenizer } = api.served;
      if (existsSync(join(model, 'tokenizer.json'))) {
        try {
          nextTokenizer = await loadTokenizer(model);
        } catch (err) {
          next.dispose();
          throw new RequestError(400, `cannot load the tokenizer of ${model}: ${(err as Error).message}`, 'model');
        }
      }
      // Calls already queued on the compute thread hold the old weights until they finish; later batches get the new.
      const old = state.policy;
      state.policy = next;
      api.served = { tokenizer: nextTokenizer, limits: { ...api.served.limits, maxPositions: next.config.maxPositionEmbeddings } };
      old.dispose();
      return { status: 'ok', model: name, seconds: (performance.now() - started) / 1000 };
    });

    try {
      await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8000 });
    } catch (err) {
      // A port in use, an address not of this machine: the models go with the server that never started.
      releaseModels(state);
      throw err;
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    return new ModelServer(status, app, state, sampler, `http://${options.host ?? '127.0.0.1'}:${port}`);
  }

  /**
   * Stops accepting requests, lets the in-flight ones finish for up to `graceSeconds` (then aborts them: their
   * streams end with an error event), and releases the models.
   */
  async close(graceSeconds = 30): Promise<void> {
    if (this.status.draining) return;
    this.status.draining = true;
    const timer = setTimeout(
      () => this.sampler.abortAll(new RequestError(503, 'the server shut down before the request finished')),
      graceSeconds * 1000,
    );
    try {
      await this.app.close();
      await this.sampler.idle();
    } finally {
      clearTimeout(timer);
      releaseModels(this.state);
    }
  }
}

/** Disposes the served models. */
function releaseModels(state: ModelServer['state']): void {
  state.policy.dispose();
  state.scorer?.rewardModel.dispose();
  state.scorer?.reference.dispose();
}

/** The served policy's tokenizer and limits: replaced whole by /v1/reload, so a request keeps the pair it began with. */
interface Served {
  tokenizer: Tokenizer;
  limits: Limits;
}

/** The two sampling routes. */
class Api {
  constructor(
    private readonly name: string,
    public served: Served,
    private readonly sampler: Sampler,
  ) {}

  checkModel(model: string | undefined): void {
    if (model !== undefined && model !== this.name)
      throw new RequestError(404, `the model '${model}' does not exist (this server serves '${this.name}')`, 'model');
  }

  async completions(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const body = parseRequest(CompletionRequest, request.body);
    this.checkModel(body.model);
    const { served } = this;
    const { tokenizer, limits } = served;
    const prompts = completionPrompts(body, tokenizer, limits);
    const top = body.logprobs ?? 0;
    const jobs = prompts.map((prompt) => ({ prompt, maxTokens: tokenBudget(body.max_tokens, 16, prompt.length, limits) }));
    const id = `cmpl-${randomUUID()}`;
    const head = { id, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: this.name };
    const stops = stopStrings(body.stop);
    const choice = (p: number, s: number, sample: Sample) => {
      const { text, finish } = sampleText(tokenizer, sample, stops);
      return {
        index: p * body.n + s,
        text,
        logprobs: body.logprobs === null || body.logprobs === undefined ? null : completionLogprobs(tokenizer, sample, top),
        finish_reason: finish,
        token_ids: sample.tokens,
        prompt_token_ids: prompts[p],
      };
    };
    return this.run(served, request, reply, body, jobs, top, {
      chunk: (index, text) => ({ ...head, choices: [{ index, text, logprobs: null, finish_reason: null }] }),
      last: (p, s, sample, rest) => ({ ...head, choices: [{ ...choice(p, s, sample), text: rest }] }),
      whole: (samples) => ({ ...head, choices: samples.flatMap((ss, p) => ss.map((sample, s) => choice(p, s, sample))) }),
      usage: (usage) => ({ ...head, choices: [], usage }),
      stops,
    });
  }

  async chat(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const body = parseRequest(ChatRequest, request.body);
    this.checkModel(body.model);
    if (body.top_logprobs && !body.logprobs) throw new RequestError(400, 'top_logprobs needs logprobs: true', 'top_logprobs');
    const { served } = this;
    const { tokenizer, limits } = served;
    const messages = body.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join(''),
    }));
    const prompt = encodeText(tokenizer, 'messages', () => tokenizer.encodeChat(messages, { addGenerationPrompt: true }));
    checkPrompt(prompt, limits, 'messages');
    const maxTokens = tokenBudget(body.max_completion_tokens ?? body.max_tokens, limits.maxTokens, prompt.length, limits);
    const top = body.top_logprobs ?? 0;
    const id = `chatcmpl-${randomUUID()}`;
    const head = { id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: this.name };
    const chunkHead = { ...head, object: 'chat.completion.chunk' };
    const stops = stopStrings(body.stop);
    const logprobs = (sample: Sample) => (body.logprobs ? chatLogprobs(tokenizer, sample, top) : null);
    return this.run(served, request, reply, body, [{ prompt, maxTokens }], top, {
      first: (index) => ({ ...chunkHead, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }),
      chunk: (index, text) => ({ ...chunkHead, choices: [{ index, delta: { content: text }, logprobs: null, finish_reason: null }] }),
      last: (_p, s, sample, rest) => ({
        ...chunkHead,
        choices: [
          {
            index: s,
            delta: rest ? { content: rest } : {},
            logprobs: logprobs(sample),
            finish_reason: sampleText(tokenizer, sample, stops).finish,
            token_ids: sample.tokens,
          },
        ],
      }),
      whole: ([samples]) => ({
        ...head,
        choices: samples.map((sample, s) => {
          const { text, finish } = sampleText(tokenizer, sample, stops);
          return {
            index: s,
            message: { role: 'assistant', content: text },
            logprobs: logprobs(sample),
            finish_reason: finish,
            token_ids: sample.tokens,
          };
        }),
        prompt_token_ids: prompt,
      }),
      usage: (usage) => ({ ...chunkHead, choices: [], usage }),
      stops,
    });
  }

  /** Samples every job (a prompt × n), answering as one JSON body or as an SSE stream of `shape`'s chunks. */
  private async run(
    { tokenizer, limits }: Served,
    request: FastifyRequest,
    reply: FastifyReply,
    body: {
      n: number;
      temperature: number;
      top_p: number;
      top_k: number;
      seed?: number | null;
      ignore_eos: boolean;
      stream: boolean;
      stream_options?: { include_usage?: boolean } | null;
    },
    jobs: { prompt: number[]; maxTokens: number }[],
    topLogprobs: number,
    shape: {
      first?: (index: number) => object;
      chunk: (index: number, text: string) => object;
      last: (prompt: number, sample: number, result: Sample, rest: string) => object;
      whole: (samples: Sample[][]) => object;
      usage: (usage: object) => object;
      stops: string[];
    },
  ): Promise<unknown> {
    if (body.n > limits.maxN) throw new RequestError(400, `n ${body.n} exceeds this server's limit of ${limits.maxN}`, 'n');
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort(new Error('the client disconnected'));
    });
    const stopSequences = shape.stops
      .map((s) => encodeText(tokenizer, 'stop', () => tokenizer.encode(s, { addSpecialTokens: false })))
      .filter((ids) => ids.length > 0);
    const base = {
      n: body.n,
      temperature: body.temperature,
      topP: body.top_p,
      topK: body.top_k > 0 ? body.top_k : 0,
      seed: body.seed ?? undefined,
      stopSequences,
      topLogprobs,
      ignoreEos: body.ignore_eos,
      signal: gone.signal,
    };
    // OpenAI's and vLLM's count: each prompt once (not once per choice), every choice's tokens.
    const usage = (samples: Sample[][]) => {
      const completion = samples.flat().reduce((a, s) => a + s.tokens.length, 0);
      const prompt = jobs.reduce((a, j) => a + j.prompt.length, 0);
      return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    };
    // Each choice's tokens end where its text does: at the token completing its first stop string.
    const sample = async (job: (typeof jobs)[number], onTokens?: SampleRequest['onTokens']) =>
      (await this.sampler.sample({ ...base, ...job, onTokens })).map((s) => atStopString(tokenizer, s, shape.stops));
    if (!body.stream) {
      const samples = await Promise.all(jobs.map((job) => sample(job)));
      return { ...shape.whole(samples), usage: usage(samples) };
    }
    // SSE: each choice's text as it is sampled (a possible stop string's start held back), then its last chunk with
    // the finish reason, log-probs and token ids.
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const send = (data: object | string) => !out.destroyed && out.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    const hold = Math.max(0, ...shape.stops.map((s) => s.length - 1));
    const state = jobs.map(() => Array.from({ length: body.n }, () => ({ tokens: [] as number[], sent: '', stopped: false })));
    const push = (p: number, s: number) => {
      const choice = state[p][s];
      if (choice.stopped) return;
      let text = streamableText(tokenizer, choice.tokens);
      const at = firstStop(text, shape.stops);
      if (at >= 0) [text, choice.stopped] = [text.slice(0, at), true];
      const ready = choice.stopped ? text : text.slice(0, Math.max(choice.sent.length, text.length - hold));
      if (ready.length > choice.sent.length && ready.startsWith(choice.sent)) {
        send(shape.chunk(p * body.n + s, ready.slice(choice.sent.length)));
        choice.sent = ready;
      }
    };
    jobs.forEach((_, p) => state[p].forEach((_, s) => shape.first && send(shape.first(p * body.n + s))));
    try {
      const samples = await Promise.all(
        jobs.map((job, p) =>
          sample(job, (s, tokens) => {
            state[p][s].tokens.push(...tokens);
            push(p, s);
          }),
        ),
      );
      samples.forEach((ss, p) =>
        ss.forEach((result, s) => {
          const { text } = sampleText(tokenizer, result, shape.stops);
          const { sent } = state[p][s];
          send(shape.last(p, s, result, text.startsWith(sent) ? text.slice(sent.length) : ''));
        }),
      );
      if (body.stream_options?.include_usage) send(shape.usage(usage(samples)));
      send('[DONE]');
    } catch (err) {
      if (!gone.signal.aborted) send({ error: { message: (err as Error).message, type: 'server_error', param: null, code: null } });
    } finally {
      out.end();
    }
    return reply;
  }
}
