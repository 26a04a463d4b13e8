// The OpenAI-compatible wire format of `prefix-rl serve`: request schemas (what is accepted, and what is refused
// with a clear 400 rather than ignored), and the responses and stream chunks of /v1/completions and
// /v1/chat/completions, with the token ids vLLM adds (`prompt_token_ids`, `token_ids`).
import { z } from 'zod';
import type { FinishReason } from '../model/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { firstTokens, type Sample } from './sampler.js';

/** The server's limits (flags of `prefix-rl serve`). */
export interface Limits {
  maxTokens: number;
  maxN: number;
  /** Positions the model knows: a prompt plus its new tokens must fit. */
  maxPositions: number;
  vocabSize: number;
}

const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullish();
const sampling = {
  model: z.string().optional(),
  n: z.number().int().min(1).default(1),
  temperature: z.number().min(0).max(10).default(1),
  top_p: z.number().gt(0).max(1).default(1),
  top_k: z.number().int().min(-1).default(-1), // vLLM's: −1 (or 0) is off
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop,
  /** vLLM's: keep sampling past EOS tokens (to max_tokens). */
  ignore_eos: z.boolean().default(false),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  user: z.string().optional(),
};
/** Fields of OpenAI's API this server does not implement: refused, not silently ignored. */
const unsupported = [
  'echo',
  'suffix',
  'best_of',
  'logit_bias',
  'tools',
  'tool_choice',
  'functions',
  'response_format',
  'presence_penalty',
  'frequency_penalty',
];

export const CompletionRequest = z.object({
  ...sampling,
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(z.number().int().min(0)).min(1),
    z.array(z.array(z.number().int().min(0)).min(1)).min(1),
  ]),
  max_tokens: z.number().int().min(1).nullish(),
  logprobs: z.number().int().min(0).max(20).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const message = z.object({
  role: z.enum(['system', 'user', 'assistant', 'developer']),
  content: z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() })).min(1)]),
});
export const ChatRequest = z.object({
  ...sampling,
  messages: z.array(message).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().default(false),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const ScoreRequest = z
  .object({
    model: z.string().optional(),
    problem: z.string(),
    steps: z.array(z.string()).min(1).optional(),
    text: z.string().optional(),
    step_ends: z.array(z.number().int().min(1)).min(1).optional(),
    mode: z.enum(['sum', 'sum_diff', 'mean', 'mean_diff']).default('sum'),
    threshold: z.number().default(0.5),
    coef: z.number().gt(0).default(0.001),
    beta: z.number().gt(0).default(1),
  })
  .refine((r) => (r.steps !== undefined) !== (r.text !== undefined && r.step_ends !== undefined), 'give steps, or text with step_ends');
export type ScoreRequest = z.infer<typeof ScoreRequest>;

/** New weights: a checkpoint folder (default: the one the server started from), and optionally a LoRA adapter on it. */
export const ReloadRequest = z
  .object({ model: z.string().min(1).optional(), adapter: z.string().min(1).optional() })
  .refine((r) => r.model !== undefined || r.adapter !== undefined, 'give model (a checkpoint folder), adapter (a PEFT folder) or both');

/** A request refused: the HTTP status and OpenAI's error body. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }
  body(): object {
    return { error: { message: this.message, type: this.type, param: this.param, code: null } };
  }
}

/** Parses `body` with `schema`, refusing unsupported fields and naming the first bad one. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, 'the request body must be a JSON object');
  const used = unsupported.find(
    (key) => key in body && (body as Record<string, unknown>)[key] !== null && (body as Record<string, unknown>)[key] !== undefined,
  );
  if (used && !(used === 'echo' && (body as Record<string, unknown>).echo === false))
    throw new RequestError(400, `'${used}' is not supported by this server`, used);
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue.path.join('.') || null;
    throw new RequestError(400, `${param ?? 'request'}: ${issue.message}`, param);
  }
  return parsed.data;
}

/** The prompts of a completion request as token ids, each checked against the model. */
export function completionPrompts(request: CompletionRequest, tokenizer: Tokenizer, limits: Limits): number[][] {
  const p = request.prompt;
  const prompts =
    typeof p === 'string'
      ? [encodeText(tokenizer, 'prompt', () => tokenizer.encode(p))]
      : typeof p[0] === 'string'
        ? (p as string[]).map((s) => encodeText(tokenizer, 'prompt', () => tokenizer.encode(s)))
        : typeof p[0] === 'number'
          ? [p as number[]]
          : (p as number[][]);
  if (prompts.length > limits.maxN) throw new RequestError(400, `at most ${limits.maxN} prompts per request`, 'prompt');
  prompts.forEach((ids) => checkPrompt(ids, limits, 'prompt'));
  return prompts;
}

/**
 * Token ids of a request's text, from `encode` (a call of `tokenizer`'s). A text the tokenizer refuses (a character
 * it cannot encode, a failing chat template) is the client's error: 400 naming `param`, the message without the
 * tokenizer's folder (a path on the server).
 */
export function encodeText(tokenizer: Tokenizer, param: string, encode: () => number[]): number[] {
  try {
    return encode();
  } catch (err) {
    const message = (err as Error).message;
    const prefix = `${tokenizer.source}: `;
    throw new RequestError(400, `${param}: ${message.startsWith(prefix) ? message.slice(prefix.length) : message}`, param);
  }
}

export function checkPrompt(ids: readonly number[], limits: Limits, param: string): void {
  if (ids.length === 0) throw new RequestError(400, 'the prompt has no tokens', param);
  const bad = ids.find((id) => id >= limits.vocabSize);
  if (bad !== undefined) throw new RequestError(400, `token id ${bad} is outside the model's vocabulary (${limits.vocabSize})`, param);
  if (ids.length >= limits.maxPositions) {
    throw new RequestError(400, `the prompt has ${ids.length} tokens; this model knows ${limits.maxPositions} positions`, param);
  }
}

/** The new-token budget: the request's (default 16 for completions, the model's room for chat), within the limits. */
export function tokenBudget(requested: number | null | undefined, fallback: number, promptLength: number, limits: Limits): number {
  const budget = requested ?? fallback;
  if (budget > limits.maxTokens) throw new RequestError(400, `max_tokens ${budget} exceeds this server's limit of ${limits.maxTokens}`, 'max_tokens');
  return Math.max(1, Math.min(budget, limits.maxPositions - promptLength));
}

/** A request's stop strings; an empty one (found at once in every text) is refused. */
export function stopStrings(s: string | string[] | null | undefined): string[] {
  const stops = s === null || s === undefined ? [] : typeof s === 'string' ? [s] : s;
  if (stops.includes('')) throw new RequestError(400, 'stop: an empty stop string would end every choice at once', 'stop');
  return stops;
}

/** OpenAI's finish reasons: an EOS token or a stop string is 'stop'. */
export const finishReason = (reason: FinishReason): 'stop' | 'length' => (reason === 'length' ? 'length' : 'stop');

/**
 * A sample's text (special tokens skipped) cut before the first stop string; the finish reason becomes 'stop' when
 * one is found. The server first cuts the sample's tokens with atStopString, so they end where the text does.
 */
export function sampleText(tokenizer: Tokenizer, sample: Sample, stops: readonly string[]): { text: string; finish: 'stop' | 'length' } {
  const text = tokenizer.decode(sample.tokens, { skipSpecialTokens: true });
  const at = firstStop(text, stops);
  return at >= 0 ? { text: text.slice(0, at), finish: 'stop' } : { text, finish: finishReason(sample.finishReason) };
}

/**
 * A sample cut at the first stop string its text holds: its tokens (and log-probs) up to and including the one that
 * completes the stop string, as vLLM keeps them and as generate ends on a stop sequence. Sampling stops only where the
 * stop string's own tokens appear, so without this the token ids, log-probs and usage would run past the text.
 */
export function atStopString(tokenizer: Tokenizer, sample: Sample, stops: readonly string[]): Sample {
  const holds = (count: number) => firstStop(tokenizer.decode(sample.tokens.slice(0, count), { skipSpecialTokens: true }), stops) >= 0;
  if (stops.length === 0 || !holds(sample.tokens.length)) return sample;
  // The fewest tokens whose text holds a stop string (a longer prefix's text extends a shorter one's): bisection.
  let [lo, hi] = [0, sample.tokens.length];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (holds(mid)) hi = mid;
    else lo = mid;
  }
  return firstTokens(sample, hi, 'stop');
}

/** Where the first of the stop strings begins in `text`, or −1. */
export function firstStop(text: string, stops: readonly string[]): number {
  const found = stops.map((stop) => text.indexOf(stop)).filter((i) => i >= 0);
  return found.length > 0 ? Math.min(...found) : -1;
}

/** The completions API's logprobs object of a sample. */
export function completionLogprobs(tokenizer: Tokenizer, sample: Sample, top: number) {
  const tokens = sample.tokens.map((id) => tokenizer.decode([id]));
  let offset = 0;
  const text_offset = tokens.map((t) => {
    const at = offset;
    offset += t.length;
    return at;
  });
  return {
    tokens,
    token_logprobs: sample.logprobs,
    top_logprobs:
      top > 0
        ? sample.topTokens!.map((ids, i) => Object.fromEntries(ids.slice(0, top).map((id, k) => [tokenizer.decode([id]), sample.topLogprobs![i][k]])))
        : null,
    text_offset,
  };
}

/** The chat API's logprobs object of a sample. */
export function chatLogprobs(tokenizer: Tokenizer, sample: Sample, top: number) {
  const entry = (id: number, logprob: number) => {
    const token = tokenizer.decode([id]);
    return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: sample.tokens.map((id, i) => ({
      ...entry(id, sample.logprobs[i]),
      top_logprobs: top > 0 ? sample.topTokens![i].slice(0, top).map((t, k) => entry(t, sample.topLogprobs![i][k])) : [],
    })),
  };
}

/** Text that can be sent for a stream of tokens so far: a trailing incomplete UTF-8 character (U+FFFD) waits. */
export function streamableText(tokenizer: Tokenizer, tokens: readonly number[]): string {
  const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
  return text.endsWith('\uFFFD') ? text.slice(0, -1) : text;
}
