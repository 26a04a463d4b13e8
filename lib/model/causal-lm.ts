// CausalLM: a Qwen3 or Llama decoder loaded from a Hugging Face checkpoint folder, running on the native compute
// thread. Every method that touches weights returns a Promise; returned tensors join the current `tidy` scope.
import { writeFolderAtomic } from '../util/fs.js';
import { join } from 'node:path';
import { withCancel } from '../tensor/cancel.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, type AsyncOptions, type DType, type DeviceName } from '../tensor/tensor.js';
import { padBatch } from './batch.js';
import { CheckpointError, checkpointFiles, writeCheckpoint, type WriteCheckpointOptions } from './checkpoint.js';
import { parseModelConfig, readGenerationEos, readModelConfig, type ModelConfig } from './config.js';
import { ADAPTER_WEIGHTS, loraConfig, readAdapterConfig, writeAdapterConfig, type LoraConfig, type LoraOptions } from './lora.js';
import { addon, type NativeModel } from '../native/addon.js';
import type { HeadInput } from '../ops/objectives.js';
import { writeSafetensors } from './safetensors.js';

/** Parameter dtypes a model can be loaded in. */
export type ModelDType = Extract<DType, 'float32' | 'bfloat16' | 'float16' | 'float64'>;

export interface LoadModelOptions extends AsyncOptions {
  /**
   * The dtype the model computes in (default float32, whatever the checkpoint stores: weights are converted while
   * loading). Without `masterWeights` the parameters are stored in it too.
   */
  dtype?: ModelDType;
  device?: DeviceName;
  /**
   * Mixed precision for a model that trains, as FSDP does it: with a bfloat16/float16 `dtype`, keep the parameters
   * in float32 (the master weights, which gradients and AdamW update) and cast them to `dtype` where they are used.
   * A LoRA adapter is float32 under a reduced-precision dtype either way. Default false.
   */
  masterWeights?: boolean;
}

export interface ForwardOptions extends AsyncOptions {
  /**
   * Activation checkpointing, for training (it does nothing while no parameter requires grad): each layer keeps only
   * its input and backward() recomputes its activations, one more forward per layer. The recomputation accumulates
   * parameter gradients into `.grad` directly, so use backward(), not a gradient function over parameters.
   */
  checkpoint?: boolean;
  /** Record no autograd graph even while parameters require grad: scoring passes inside a training loop. */
  noGrad?: boolean;
}

export interface TokenLogprobsOptions extends ForwardOptions {
  /**
   * Through the fused LM head (default true): log-probs straight from the hidden states, the vocabulary streamed in
   * chunks, so no [B, T, V] logits exist in the forward or the backward. false: the head's logits, then the fused
   * gather (the path kept for comparison).
   */
  fusedHead?: boolean;
}

export interface LogitsOptions extends ForwardOptions {
  /**
   * Logits for `length` positions from `start` only ([B, length, V]): the LM head skips the others (an RL step's
   * prompt), and the result is contiguous. Default: every position.
   */
  positions?: { start: number; length: number };
}

export interface GenerateOptions extends AsyncOptions {
  /** Most new tokens per prompt. */
  maxNewTokens: number;
  /** Sampling temperature (default 1); 0 takes the most likely token (greedy). */
  temperature?: number;
  /** Sample among the k most likely tokens only (default 0: off). */
  topK?: number;
  /** Sample among the most likely tokens until their probability mass reaches p (default 1: off). */
  topP?: number;
  /** The sampler's seed (default 0). The same seed, prompts and options give the same tokens on the same device. */
  seed?: number;
  /** Tokens that end a row, included in its output (default: the config's eos_token_id). */
  eosTokenIds?: number[];
  /** Token sequences that end a row once its new tokens end with one, included in its output. */
  stopSequences?: number[][];
  /** Also return the K most likely tokens and their log-probs at every step (default 0). */
  topLogprobs?: number;
  /**
   * Streaming: called on the JS thread after each sampling step with every row's new token and its log-prob, and 1
   * where the row produced it (0: it had finished); every call comes before the promise resolves.
   */
  onStep?: (tokens: number[], logprobs: number[], produced: number[]) => void;
}

export type FinishReason = 'length' | 'eos' | 'stop';
const FINISH_REASONS: readonly FinishReason[] = ['length', 'eos', 'stop'];

export interface Generation {
  /** The new tokens (not the prompt), up to and including an EOS token or stop sequence. */
  tokens: number[];
  /**
   * log softmax(logits / temperature) at each token (temperature 1 when greedy): the tempered distribution before
   * top-k/top-p truncation, as a trainer recomputes it.
   */
  logprobs: number[];
  finishReason: FinishReason;
  /** With topLogprobs = K: at each step the K most likely tokens, most likely first, and their log-probs. */
  topTokens?: number[][];
  topLogprobs?: number[][];
}

export type SaveModelOptions = Omit<WriteCheckpointOptions, 'companionsFrom'>;

/**
 * Loads the checkpoint folder `dir`: config.json, and model.safetensors or the shards of
 * model.safetensors.index.json. A missing, extra or mis-shaped tensor rejects with an error naming it; an
 * unsupported or inconsistent config rejects with a ModelConfigError naming the field; weights holding a NaN or an
 * infinity reject with a CheckpointError naming them (a model that would only ever print garbage).
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<CausalLM> {
  const { config: fromFile, raw } = await readModelConfig(join(dir, 'config.json'));
  const generationEos = await readGenerationEos(join(dir, 'generation_config.json'));
  const config = { ...fromFile, eosTokenIds: [...new Set([...fromFile.eosTokenIds, ...generationEos])] };
  const files = await checkpointFiles(dir);
  const { dtype = 'float32', device = 'cpu', masterWeights = false } = options;
  const native = await withCancel(options.signal, (token) => addon().loadModel(config, files, { dtype, device, masterWeights }, token));
  const nonFinite = await withCancel(options.signal, (token) => native.nonFiniteParameters(token)).catch((err: unknown) => {
    native.dispose();
    throw err;
  });
  if (nonFinite.length > 0) {
    native.dispose();
    const shown =
      nonFinite
        .slice(0, 5)
        .map((name) => `'${name}'`)
        .join(', ') + (nonFinite.length > 5 ? ` and ${nonFinite.length - 5} more` : '');
    throw new CheckpointError(`${dir}: weights hold NaN or infinite values: ${shown}`);
  }
  return new CausalLM(native, config, raw, dir);
}

export interface InitModelOptions extends LoadModelOptions {
  /** Seed of the weights (default 0): the same config and seed give the same weights on any device. */
  seed?: number;
  /** A folder whose tokenizer and generation files save() copies next to the weights. */
  tokenizerFrom?: string;
}

/**
 * A new model with random weights from `config`, a Hugging Face config.json object (Qwen3 or Llama), drawn as
 * transformers initializes them: matrices from N(0, initializer_range²) (default 0.02), the embedding's pad_token_id
 * row zero, norms 1, biases 0. For training from scratch, such as the controlled task's SFT.
 */
export async function initModel(config: Record<string, unknown>, options: InitModelOptions = {}): Promise<CausalLM> {
  const parsed = parseModelConfig(config, 'config');
  const initializerRange = typeof config.initializer_range === 'number' ? config.initializer_range : 0.02;
  const { dtype = 'float32', device = 'cpu', masterWeights = false, seed = 0 } = options;
  const native = await withCancel(options.signal, (token) =>
    addon().initModel(parsed, { dtype, device, masterWeights, seed, initializerRange, paddingIdx: parsed.padTokenId ?? -1 }, token),
  );
  return new CausalLM(native, parsed, { ...config }, options.tokenizerFrom ?? '');
}

type NativeForwardCall<T> = (...args: Parameters<NativeModel['forward']>) => Promise<T>;

export class CausalLM {
  private adapter: LoraConfig | null = null;

  /** @internal use loadModel */
  constructor(
    private readonly native: NativeModel,
    private modelConfig: ModelConfig,
    /** config.json as read (unknown fields kept, so that save() writes them back). */
    private rawConfig: Record<string, unknown>,
    /** The folder the model was loaded from ('' for a new model without a tokenizer folder). */
    readonly source: string,
  ) {}

  /** The model's config (merging an adapter on a tied head unties it). */
  get config(): ModelConfig {
    return this.modelConfig;
  }

  /** The dtype the model computes in (activations, logits). */
  get dtype(): ModelDType {
    return this.native.dtype as ModelDType;
  }
  /** The dtype its parameters are stored and saved in: float32 with master weights, else `dtype`. */
  get parameterDtype(): ModelDType {
    return this.native.parameterDtype as ModelDType;
  }
  get device(): DeviceName {
    return this.native.device as DeviceName;
  }
  get isDisposed(): boolean {
    return this.native.isDisposed;
  }

  /** Refuses sequences past the positions the model was built for (max_position_embeddings). */
  private checkLength(length: number, what: string): void {
    const limit = this.config.maxPositionEmbeddings;
    if (length > limit) throw new RangeError(`${what} of ${length} tokens is longer than this model's max_position_embeddings (${limit})`);
  }

  /** A native call shaped like forward (forward, headInput): the length check, then the options in its form. */
  private runForward<T>(inputIds: Tensor, attentionMask: Tensor | undefined, options: LogitsOptions, call: NativeForwardCall<T>): Promise<T> {
    this.checkLength(inputIds.shape.at(-1) ?? 0, 'an input');
    const { checkpoint, noGrad, positions } = options;
    const range = positions && { logitsStart: positions.start, logitsLength: positions.length };
    return withCancel(options.signal, (token) => call(inputIds.native, attentionMask?.native ?? null, { checkpoint, noGrad, ...range }, token));
  }

  /**
   * Logits [B, T, V] in the model dtype for `inputIds` [B, T] (integer tokens) and `attentionMask` [B, T] (1 =
   * token, 0 = padding; omitted = no padding). Positions count tokens only, so left- or right-padded rows give the
   * logits of their unpadded sequences; logits at padding positions are meaningless.
   */
  async forward(inputIds: Tensor, attentionMask?: Tensor, options: LogitsOptions = {}): Promise<Tensor> {
    return Tensor.wrap(await this.runForward(inputIds, attentionMask, options, (...args) => this.native.forward(...args)));
  }

  /**
   * The LM head's input at the positions forward() gives logits for: the final hidden states [B, length, H] (after
   * the last norm, with their graph unless noGrad) and the head's weight [V, H] in the model dtype (the embedding
   * when tied; with master weights a differentiable cast of it) and, with a LoRA on lm_head, its low-rank term
   * (`lora`). headLogprobs and the distrl objectives take them in place of logits, through the fused LM head: no
   * [B, length, V] tensor is built.
   */
  async headInput(inputIds: Tensor, attentionMask?: Tensor, options: LogitsOptions = {}): Promise<HeadInput> {
    const out = await this.runForward(inputIds, attentionMask, options, (...args) => this.native.headInput(...args));
    const input: HeadInput = { hidden: Tensor.wrap(out.hidden), weight: Tensor.wrap(out.weight) };
    if (out.loraHidden && out.loraWeight) input.lora = { hidden: Tensor.wrap(out.loraHidden), weight: Tensor.wrap(out.loraWeight) };
    return input;
  }

  /**
   * log p(token t | tokens before t) for t = 1..T-1, as [B, T-1] float32; 0 where the token is padding or is the
   * first token of its row (it has no prefix). Computes no logits for the last position.
   */
  async tokenLogprobs(inputIds: Tensor, attentionMask?: Tensor, options: TokenLogprobsOptions = {}): Promise<Tensor> {
    this.checkLength(inputIds.shape.at(-1) ?? 0, 'an input');
    const { checkpoint, noGrad, fusedHead } = options;
    const out = await withCancel(options.signal, (token) =>
      this.native.tokenLogprobs(inputIds.native, attentionMask?.native ?? null, { checkpoint, noGrad, fusedHead }, token),
    );
    return Tensor.wrap(out);
  }

  /**
   * Per-position log-probs [T-1] of each token sequence (entry j scores token j + 1), in batches of `batchSize`
   * (default 32) with no autograd graph: for scoring, such as a reference model's log-probs.
   */
  async sequenceLogprobs(
    sequences: readonly (readonly number[])[],
    options: AsyncOptions & { batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
  ): Promise<number[][]> {
    const { batchSize = 32, signal } = options;
    const out: number[][] = [];
    for (let start = 0; start < sequences.length; start += batchSize) {
      const batch = sequences.slice(start, start + batchSize);
      const rows = await tidy(async () => {
        const { inputIds, attentionMask } = padBatch(batch);
        return (await this.tokenLogprobs(inputIds, attentionMask, { noGrad: true, signal })).toNested() as number[][];
      }).catch((err: Error) => {
        if (err.name === 'AbortError') throw err;
        // Which input failed (a too-long one, one whose activations do not fit): the longest of the batch.
        const longest = batch.reduce((best, tokens, i) => (tokens.length > batch[best].length ? i : best), 0);
        const located = new Error(
          `scoring sequences ${start}–${start + batch.length - 1} (the longest: sequence ${start + longest}, ${batch[longest].length} tokens) failed: ${err.message}`,
          { cause: err },
        );
        throw Object.assign(located, { code: (err as Error & { code?: string }).code });
      });
      batch.forEach((tokens, i) => out.push(rows[i].slice(0, tokens.length - 1)));
      options.onBatch?.(out.length, sequences.length);
    }
    return out;
  }

  /**
   * Samples continuations of `prompts` (token ids, at least one each) as one batch with a KV cache. Rows stop at an
   * EOS token, a stop sequence or `maxNewTokens`; the batch stops when every row has. Which tokens a row gets
   * depends on its seed and on the whole batch (rows draw from one random stream), never on timing.
   */
  async generate(prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<Generation[]> {
    const { signal, eosTokenIds = this.config.eosTokenIds, onStep, ...sampling } = options;
    // A prompt must leave room for one new token; generation stops at the last position the model knows.
    const longest = prompts.reduce((m, p) => Math.max(m, p.length), 0);
    this.checkLength(longest + 1, 'a prompt (with one new token)');
    const maxNewTokens = Math.min(sampling.maxNewTokens, this.config.maxPositionEmbeddings - longest);
    return tidy(async () => {
      const { inputIds, attentionMask } = padBatch(prompts, { side: 'left', padId: this.config.padTokenId ?? 0 });
      // Steps arrive through a channel of their own: the result waits until every step has been delivered.
      // A throwing onStep fails the call (not the process): the rest of the steps are not passed on.
      let [delivered, allDelivered] = [0, () => {}];
      let failure: unknown;
      const stepped =
        onStep &&
        ((tokens: number[], logprobs: number[], produced: number[]) => {
          delivered++;
          try {
            if (failure === undefined) onStep(tokens, logprobs, produced);
          } catch (err) {
            failure = err;
          }
          allDelivered();
        });
      const raw = await withCancel(signal, (token) =>
        this.native.generate(inputIds.native, attentionMask.native, { ...sampling, maxNewTokens, eosTokenIds, onStep: stepped }, token),
      );
      // Wrapped at once, so that the enclosing tidy disposes them whatever happens next.
      const [tokensT, logprobsT, lengthsT, reasonsT] = [raw.tokens, raw.logprobs, raw.lengths, raw.finishReasons].map((t) => Tensor.wrap(t));
      const [topTokensT, topLogprobsT] = [raw.topTokens, raw.topLogprobs].map((t) => t && Tensor.wrap(t));
      const steps = tokensT.shape[1];
      if (stepped && delivered < steps) await new Promise<void>((resolve) => (allDelivered = () => delivered >= steps && resolve()));
      if (failure !== undefined) throw failure;
      const [tokens, logprobs, lengths, reasons] = [tokensT, logprobsT, lengthsT, reasonsT].map((t) => t.toNested());
      const topTokens = topTokensT && (topTokensT.toNested() as number[][][]);
      const topLogprobs = topLogprobsT && (topLogprobsT.toNested() as number[][][]);
      return prompts.map((_, row): Generation => {
        const length = (lengths as number[])[row];
        const generation: Generation = {
          tokens: (tokens as number[][])[row].slice(0, length),
          logprobs: (logprobs as number[][])[row].slice(0, length),
          finishReason: FINISH_REASONS[(reasons as number[])[row]],
        };
        if (topTokens && topLogprobs) {
          generation.topTokens = topTokens[row].slice(0, length);
          generation.topLogprobs = topLogprobs[row].slice(0, length);
        }
        return generation;
      });
    });
  }

  /** Every parameter by its Hugging Face name; the tensors share storage with the model (dispose them when done). */
  parameters(): Map<string, Tensor> {
    return new Map(Object.entries(this.native.parameters()).map(([name, native]) => [name, Tensor.wrap(native)]));
  }

  /**
   * Writes a Hugging Face checkpoint folder: config.json (with the parameters' dtype), the weights as stored (float32
   * master weights under mixed precision, so that a resumed run continues exactly; sharded past `maxShardBytes`) and
   * the tokenizer and generation files of the source folder.
   */
  async save(dir: string, options: SaveModelOptions = {}): Promise<void> {
    const parameters = this.parameters();
    try {
      const config = { ...this.rawConfig };
      // transformers >= 5 writes `dtype`, older versions `torch_dtype`; keep whichever the checkpoint had.
      const dtypeKey = 'dtype' in config && !('torch_dtype' in config) ? 'dtype' : 'torch_dtype';
      config[dtypeKey] = this.parameterDtype;
      // Built aside and renamed into place: a crash leaves the old checkpoint or the new one, never a mix.
      await writeFolderAtomic(dir, (temp) => writeCheckpoint(temp, config, [...parameters], { ...options, companionsFrom: this.source }));
    } finally {
      for (const tensor of parameters.values()) tensor.dispose();
    }
  }

  // ---- LoRA ----

  /** The attached LoRA adapter's config, or null. */
  get lora(): LoraConfig | null {
    return this.adapter;
  }

  /**
   * Attaches a new LoRA adapter, initialized as PEFT does (A uniform from `seed`, B zero: the outputs do not change
   * until it trains). Train it through `loraParameters()`; the base parameters need not require grad.
   */
  async addLora(options: LoraOptions & AsyncOptions & { seed?: number }): Promise<void> {
    const config = loraConfig(options);
    await withCancel(options.signal, (token) => this.native.addLora(config, options.seed ?? 0, token));
    this.adapter = config;
  }

  /** Attaches the PEFT LoRA adapter in `dir` (adapter_config.json + adapter_model.safetensors). */
  async loadAdapter(dir: string, options: AsyncOptions = {}): Promise<void> {
    const config = await readAdapterConfig(dir);
    await withCancel(options.signal, (token) => this.native.loadLora(config, [join(dir, ADAPTER_WEIGHTS)], token));
    this.adapter = config;
  }

  /** Writes the attached adapter as a PEFT folder, loadable by PeftModel.from_pretrained on the source model. */
  async saveAdapter(dir: string, options: AsyncOptions = {}): Promise<void> {
    if (!this.adapter) throw new Error('saveAdapter: the model has no LoRA adapter');
    const adapter = this.adapter;
    await writeFolderAtomic(dir, async (temp) => {
      await writeAdapterConfig(temp, adapter, this.source);
      await tidy(() => writeSafetensors(join(temp, ADAPTER_WEIGHTS), this.loraParameters(), { format: 'pt' }, options));
    });
  }

  /**
   * Folds the adapter into the base weights (W += scale · B A) and detaches it. An adapter on a tied LM head unties
   * it: the head becomes a weight of its own (`lm_head.weight`, saved with tie_word_embeddings false), the input
   * embedding unchanged.
   */
  async mergeAdapter(options: AsyncOptions = {}): Promise<void> {
    await withCancel(options.signal, (token) => this.native.mergeLora(token));
    if (this.adapter?.targetModules.includes('lm_head') && this.modelConfig.tieWordEmbeddings) {
      this.modelConfig = { ...this.modelConfig, tieWordEmbeddings: false };
      this.rawConfig = { ...this.rawConfig, tie_word_embeddings: false };
    }
    this.adapter = null;
  }

  /** Detaches the adapter, leaving the base weights as they were. */
  async removeAdapter(options: AsyncOptions = {}): Promise<void> {
    await withCancel(options.signal, (token) => this.native.removeLora(token));
    this.adapter = null;
  }

  /** The adapter's parameters by PEFT name (empty without one); the tensors share storage with the model. */
  loraParameters(): Map<string, Tensor> {
    return new Map(Object.entries(this.native.loraParameters()).map(([name, native]) => [name, Tensor.wrap(native)]));
  }

  /** Frees the weights now (idempotent). Jobs already running keep their own reference. */
  dispose(): void {
    this.native.dispose();
  }
}
