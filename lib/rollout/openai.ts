// Rollouts from an OpenAI-compatible server (`prefix-rl serve`, vLLM, SGLang): token ids in (the prompt as ids, so
// the server's tokenization cannot drift from the trainer's), token ids and their log-probs out. It stands where
// the policy samples (`sampleRollouts(engine, …)`); the trainer still recomputes π_old itself. After each policy
// update the weights reach the server through a checkpoint folder both can read: prefix-rl serve's /v1/reload,
// or vLLM's runtime LoRA loading.
import type { CausalLM, FinishReason, Generation, GenerateOptions } from '../model/index.js';

export interface OpenAIEngineOptions {
  /** The API's base URL, e.g. http://host:8000/v1. */
  url: string;
  apiKey?: string;
  /** The served model's id (default: the first of /v1/models). */
  model?: string;
  /** Longest wait for one request (default 600 s). */
  timeoutSeconds?: number;
}

interface CompletionChoice {
  index: number;
  finish_reason: string | null;
  token_ids?: number[];
  logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[] } | null;
}

/** Samples through an OpenAI-compatible /v1/completions: the `generate` of CausalLM, served elsewhere. */
export class OpenAIEngine implements Pick<CausalLM, 'generate'> {
  private model: string | undefined;

  constructor(private readonly options: OpenAIEngineOptions) {
    if (!/^https?:\/\//.test(options.url)) throw new Error(`rollout.url must be an http(s) URL, got '${options.url}'`);
    this.model = options.model;
  }

  get url(): string {
    return this.options.url.replace(/\/+$/, '');
  }

  /**
   * Samples each prompt's continuation: consecutive equal prompts become one request with n samples, and every
   * request is sent at once (the server batches them). `seed` seeds request i with seed + its first row. Of
   * GenerateOptions it honours maxNewTokens, temperature, topP, topK, seed and signal (the others are refused).
   */
  async generate(prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<Generation[]> {
    const unsupported = (['eosTokenIds', 'stopSequences', 'topLogprobs', 'onStep'] as const).filter((key) => options[key] !== undefined);
    if (unsupported.length > 0)
      throw new Error(`sampling through ${this.url} does not support ${unsupported.join(', ')} (the server's model config decides EOS)`);
    const model = await this.modelId(options.signal);
    const groups: { prompt: readonly number[]; first: number; n: number }[] = [];
    prompts.forEach((prompt, row) => {
      const last = groups.at(-1);
      if (last && last.prompt.length === prompt.length && last.prompt.every((id, i) => id === prompt[i])) last.n++;
      else groups.push({ prompt, first: row, n: 1 });
    });
    const answers = await Promise.all(
      groups.map(async ({ prompt, first, n }) => {
        const body = {
          model,
          prompt: [...prompt],
          n,
          max_tokens: options.maxNewTokens,
          temperature: options.temperature ?? 1,
          top_p: options.topP ?? 1,
          ...(options.topK && { top_k: options.topK }),
          ...(options.seed !== undefined && { seed: options.seed + first }),
          logprobs: 0,
          // vLLM: the sampled ids (newer versions: token_ids; older: "token_id:N" as the logprobs' tokens).
          return_token_ids: true,
          return_tokens_as_token_ids: true,
        };
        const answer = (await this.post('/completions', body, options.signal)) as { choices?: CompletionChoice[] };
        if (!Array.isArray(answer.choices) || answer.choices.length !== n) {
          throw new Error(`${this.url}/completions answered ${answer.choices?.length ?? 'no'} choices for n = ${n}`);
        }
        return [...answer.choices].sort((a, b) => a.index - b.index).map((choice) => this.generation(choice));
      }),
    );
    return answers.flat();
  }

  /** prefix-rl serve: loads new weights (a checkpoint folder, or the served base plus an adapter folder). */
  async reload(weights: { model?: string; adapter?: string }, signal?: AbortSignal): Promise<void> {
    await this.post('/reload', weights, signal);
  }

  /** vLLM (VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, --enable-lora): serve the adapter in `path` as `name`, then sample from it. */
  async loadLoraAdapter(name: string, path: string, signal?: AbortSignal): Promise<void> {
    await this.post('/load_lora_adapter', { lora_name: name, lora_path: path }, signal, { text: true });
    this.model = name;
  }

  async unloadLoraAdapter(name: string, signal?: AbortSignal): Promise<void> {
    await this.post('/unload_lora_adapter', { lora_name: name }, signal, { text: true });
  }

  private generation(choice: CompletionChoice): Generation {
    const ids = choice.token_ids ?? choice.logprobs?.tokens?.map((t) => Number(/^token_id:(\d+)$/.exec(t)?.[1] ?? NaN));
    if (!ids || ids.some((id) => !Number.isInteger(id))) {
      throw new Error(`${this.url}/completions returned no token ids (prefix-rl serve and vLLM ≥ 0.10 return token_ids)`);
    }
    const logprobs = choice.logprobs?.token_logprobs?.map((v) => v ?? NaN) ?? ids.map(() => NaN);
    const finishReason: FinishReason = choice.finish_reason === 'length' ? 'length' : 'eos';
    return { tokens: ids, logprobs, finishReason };
  }

  /** The ids the server's /models lists: its model, and on vLLM each loaded LoRA adapter. */
  async modelIds(signal?: AbortSignal): Promise<string[]> {
    const models = (await this.request('GET', '/models', undefined, signal)) as { data?: { id?: unknown }[] };
    return (models.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
  }

  private async modelId(signal?: AbortSignal): Promise<string> {
    if (this.model) return this.model;
    const [id] = await this.modelIds(signal);
    if (!id) throw new Error(`${this.url}/models lists no model`);
    return (this.model = id);
  }

  private post(path: string, body: object, signal?: AbortSignal, answer?: { text: boolean }): Promise<unknown> {
    return this.request('POST', path, body, signal, answer);
  }

  /** The answer's JSON; with `text`, any successful answer (vLLM's LoRA endpoints answer in plain text). */
  private async request(method: string, path: string, body: object | undefined, signal?: AbortSignal, answer = { text: false }): Promise<unknown> {
    const timeout = AbortSignal.timeout((this.options.timeoutSeconds ?? 600) * 1000);
    let response: Response;
    try {
      response = await fetch(this.url + path, {
        method,
        headers: { 'content-type': 'application/json', ...(this.options.apiKey && { authorization: `Bearer ${this.options.apiKey}` }) },
        body: body && JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      throw new Error(`${method} ${this.url}${path} failed: ${(err as Error).message} (is the server running?)`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      // OpenAI's and newer vLLM's {error: {message}}, older vLLM's {message}.
      const error = json as { error?: { message?: string }; message?: string } | undefined;
      const message = error?.error?.message ?? error?.message ?? text.slice(0, 300);
      throw new Error(`${method} ${this.url}${path}: ${response.status} ${message}`);
    }
    if (answer.text) return json ?? text;
    if (json === undefined) throw new Error(`${method} ${this.url}${path} answered something other than JSON`);
    return json;
  }
}
