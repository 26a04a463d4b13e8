// The serving scheduler: requests that arrive together and sample alike become one batched `generate` call, whose
// steps stream back to each request's rows. One call runs at a time (the compute thread is one queue anyway); the
// requests that arrive meanwhile wait for the next. A request with a seed samples alone, so its answer depends on
// its seed and nothing else, as the library's own sampling does.
import type { CausalLM, FinishReason } from '../model/index.js';

export interface SampleRequest {
  prompt: readonly number[];
  /** Samples of the prompt (rows of the batch). */
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed?: number;
  /** Token sequences that end a row (stop strings, tokenized), and the top-K log-probs to record per token. */
  stopSequences: number[][];
  topLogprobs: number;
  /** Sample past EOS tokens, to maxTokens. */
  ignoreEos?: boolean;
  /** Streaming: each sample's new tokens (and their log-probs) as they are sampled. */
  onTokens?: (sample: number, tokens: number[], logprobs: number[]) => void;
  /** Aborted when the client has gone: its rows are dropped, and a batch whose every request has gone stops. */
  signal?: AbortSignal;
}

export interface Sample {
  tokens: number[];
  logprobs: number[];
  topTokens?: number[][];
  topLogprobs?: number[][];
  finishReason: FinishReason;
}

interface Pending {
  request: SampleRequest;
  resolve: (samples: Sample[]) => void;
  reject: (error: unknown) => void;
}

export interface SamplerOptions {
  /** Most rows in one call (default 64). */
  maxBatchRows?: number;
  /** How long an idle sampler waits for more requests before it starts a call (default 5 ms; longer while a burst arrives, see gather). */
  gatherMs?: number;
}

export class Sampler {
  private readonly queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private calls = 0;
  private stopped = 0;
  private readonly inFlight = new Set<AbortController>();

  constructor(
    private readonly model: () => CausalLM,
    private readonly options: SamplerOptions = {},
  ) {}

  /** Samples `request.n` continuations of its prompt. */
  sample(request: SampleRequest): Promise<Sample[]> {
    return new Promise((resolve, reject) => {
      if (request.signal?.aborted) return reject(request.signal.reason);
      this.queue.push({ request, resolve, reject });
      this.kick();
    });
  }

  /** Number of generate calls made so far (how many batches the requests formed). */
  get batches(): number {
    return this.calls;
  }

  /** Calls stopped early because every client of the batch had gone. */
  get abandoned(): number {
    return this.stopped;
  }

  /** Resolves when no call is running and none is queued. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops the running call (its requests reject with `reason`) and rejects every queued request. */
  abortAll(reason: Error): void {
    for (const pending of this.queue.splice(0)) pending.reject(reason);
    for (const controller of this.inFlight) controller.abort(reason);
  }

  private kick(): void {
    if (this.running) return;
    this.running = (async () => {
      try {
        while (this.queue.length > 0) {
          await this.gather();
          await this.runBatch(this.takeBatch());
        }
      } finally {
        this.running = undefined;
      }
    })();
  }

  /**
   * Waits one window for more requests, and another as long as the last one brought some (a burst still arriving),
   * up to five windows: a lone request waits one window, a burst is sampled together.
   */
  private async gather(): Promise<void> {
    const window = this.options.gatherMs ?? 5;
    for (let waited = 0, seen = -1; this.queue.length > seen && waited < 5 * window; waited += window) {
      seen = this.queue.length;
      await new Promise((resolve) => setTimeout(resolve, window));
    }
  }

  /**
   * The first queued request and every queued one that samples alike, up to the row budget, and only while the
   * batch's longest prompt leaves every request its own token budget: generate caps a batch's new tokens at the
   * positions its longest prompt leaves, so a short prompt batched with a long one would be cut short.
   */
  private takeBatch(): Pending[] {
    const budget = this.options.maxBatchRows ?? 64;
    const positions = this.model().config.maxPositionEmbeddings;
    const first = this.queue.shift()!;
    const batch = [first];
    if (first.request.seed !== undefined) return batch;
    const key = batchKey(first.request);
    let [rows, longest, maxTokens] = [first.request.n, first.request.prompt.length, first.request.maxTokens];
    for (let i = 0; i < this.queue.length;) {
      const { request } = this.queue[i];
      const fits = Math.max(longest, request.prompt.length) + Math.max(maxTokens, request.maxTokens) <= positions;
      if (request.seed === undefined && batchKey(request) === key && rows + request.n <= budget && fits) {
        batch.push(...this.queue.splice(i, 1));
        rows += request.n;
        longest = Math.max(longest, request.prompt.length);
        maxTokens = Math.max(maxTokens, request.maxTokens);
      } else i++;
    }
    return batch;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const live = batch.filter((p) => {
      if (p.request.signal?.aborted) p.reject(p.request.signal.reason);
      return !p.request.signal?.aborted;
    });
    if (live.length === 0) return;
    const rows = live.flatMap((pending, r) => Array.from({ length: pending.request.n }, (_, sample) => ({ r, sample })));
    const { request: first } = live[0];
    const maxTokens = Math.max(...live.map((p) => p.request.maxTokens));
    const controller = new AbortController();
    const gone = () => {
      if (!live.every((p) => p.request.signal?.aborted) || controller.signal.aborted) return;
      this.stopped++;
      controller.abort(new Error('every client of the batch has gone'));
    };
    for (const p of live) p.request.signal?.addEventListener('abort', gone, { once: true });
    const streamed = rows.map(() => 0);
    this.inFlight.add(controller);
    this.calls++;
    try {
      const generations = await this.model().generate(
        rows.map(({ r }) => live[r].request.prompt),
        {
          maxNewTokens: maxTokens,
          temperature: first.temperature,
          topP: first.topP,
          topK: first.topK,
          seed: first.seed ?? this.calls,
          stopSequences: first.stopSequences.length > 0 ? first.stopSequences : undefined,
          topLogprobs: first.topLogprobs,
          ...(first.ignoreEos && { eosTokenIds: [] }),
          signal: controller.signal,
          onStep: live.some((p) => p.request.onTokens)
            ? (tokens, logprobs, produced) =>
                rows.forEach(({ r, sample }, row) => {
                  const { request } = live[r];
                  if (!produced[row] || !request.onTokens || request.signal?.aborted || streamed[row] >= request.maxTokens) return;
                  streamed[row]++;
                  request.onTokens(sample, [tokens[row]], [logprobs[row]]);
                })
            : undefined,
        },
      );
      live.forEach((pending, r) => {
        const samples = rows
          .map((row, i) => ({ row, generation: generations[i] }))
          .filter(({ row }) => row.r === r)
          .map(({ generation }) => truncate(generation, pending.request.maxTokens));
        pending.resolve(samples);
      });
    } catch (err) {
      for (const pending of live) pending.reject(pending.request.signal?.aborted ? pending.request.signal.reason : err);
    } finally {
      this.inFlight.delete(controller);
      for (const p of live) p.request.signal?.removeEventListener('abort', gone);
    }
  }
}

/** What a batch's rows must share: every sampling setting but the prompt, the count and the token budget. */
function batchKey(r: SampleRequest): string {
  return JSON.stringify([r.temperature, r.topP, r.topK, r.topLogprobs, r.stopSequences, r.ignoreEos ?? false]);
}

/** A row sampled with a larger budget than its request's, cut back to it. */
function truncate(generation: Sample, maxTokens: number): Sample {
  return generation.tokens.length <= maxTokens ? generation : firstTokens(generation, maxTokens, 'length');
}

/** A sample's first `count` tokens (with their log-probs), ended for `finishReason`. */
export function firstTokens(sample: Sample, count: number, finishReason: FinishReason): Sample {
  return {
    tokens: sample.tokens.slice(0, count),
    logprobs: sample.logprobs.slice(0, count),
    ...(sample.topTokens && { topTokens: sample.topTokens.slice(0, count), topLogprobs: sample.topLogprobs!.slice(0, count) }),
    finishReason,
  };
}
