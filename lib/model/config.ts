// Hugging Face config.json of the supported decoders (Qwen3, Llama), validated with zod and normalized to the
// camelCase ModelConfig that the native decoder takes. Both config layouts are read: rope_theta + rope_scaling
// (transformers < 5, most checkpoints) and rope_parameters (transformers >= 5).
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseJson } from '../util/json.js';

export const MODEL_TYPES = ['qwen3', 'llama'] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

/** Llama 3.1+ rope_scaling: low frequencies slowed by `factor`, high ones kept, the band between interpolated. */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** Qwen3's RMSNorm over each query and key head. */
  qkNorm: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  /**
   * The ids that end generation: config.json's eos_token_id (one or a list) and, for a loaded checkpoint, those of its
   * generation_config.json (Qwen3 chat models end a turn with <|im_end|> there and <|endoftext|> too), as transformers
   * and vLLM stop on them.
   */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The dtype the checkpoint was saved in (torch_dtype / dtype), when the config says. */
  checkpointDtype: string | null;
}

/** A config.json that is not a supported decoder, or is inconsistent; the message names the file and the field. */
export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative().nullish();

const RopeSchema = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(), // the key before transformers 4.45
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: positiveInt.optional(),
});

const HfConfigSchema = z.looseObject({
  model_type: z.string({ error: 'is required (this loader supports qwen3 and llama)' }),
  vocab_size: positiveInt,
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  hidden_act: z.string().optional(),
  rms_norm_eps: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: RopeSchema.nullish(),
  rope_parameters: RopeSchema.nullish(),
  tie_word_embeddings: z.boolean().optional(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  use_sliding_window: z.boolean().optional(),
  max_position_embeddings: positiveInt.optional(),
  bos_token_id: tokenId,
  eos_token_id: z.union([tokenId, z.array(z.number().int().nonnegative())]),
  pad_token_id: tokenId,
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});
type HfConfig = z.output<typeof HfConfigSchema>;

/** transformers' defaults where config.json may omit a field (they differ per family). */
const DEFAULTS: Record<ModelType, { headDim: (c: HfConfig) => number; ropeTheta: number; rmsNormEps: number; maxPositions: number }> = {
  qwen3: { headDim: () => 128, ropeTheta: 10_000, rmsNormEps: 1e-6, maxPositions: 32_768 },
  llama: { headDim: (c) => Math.floor(c.hidden_size / c.num_attention_heads), ropeTheta: 10_000, rmsNormEps: 1e-6, maxPositions: 2048 },
};

function ropeScaling(rope: z.output<typeof RopeSchema> | null | undefined, fail: (message: string) => never): Llama3RopeScaling | null {
  const type = rope?.rope_type ?? rope?.type ?? 'default';
  if (type === 'default') return null;
  if (type !== 'llama3') fail(`rope type '${type}' is not supported (supported: default, llama3)`);
  const { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } = rope ?? {};
  if (factor === undefined || low_freq_factor === undefined || high_freq_factor === undefined || original_max_position_embeddings === undefined) {
    fail('llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings');
  }
  if (!(high_freq_factor > low_freq_factor)) fail('llama3 rope scaling needs high_freq_factor > low_freq_factor');
  return {
    factor,
    lowFreqFactor: low_freq_factor,
    highFreqFactor: high_freq_factor,
    originalMaxPositionEmbeddings: original_max_position_embeddings,
  };
}

/**
 * Validates a parsed config.json and normalizes it. `source` (a path) leads every error message.
 * Throws ModelConfigError for unsupported families or features and for inconsistent sizes.
 */
export function parseModelConfig(raw: unknown, source = 'config.json'): ModelConfig {
  const fail = (message: string): never => {
    throw new ModelConfigError(`${source}: ${message}`);
  };
  const parsed = HfConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    fail(`${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  const c = parsed.data!;
  if (!(MODEL_TYPES as readonly string[]).includes(c.model_type)) {
    fail(`model_type '${c.model_type}' is not supported (supported: ${MODEL_TYPES.join(', ')})`);
  }
  const modelType = c.model_type as ModelType;
  const defaults = DEFAULTS[modelType];
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') fail(`hidden_act '${c.hidden_act}' is not supported (the MLP is SwiGLU: silu)`);
  if (c.use_sliding_window) fail('sliding-window attention (use_sliding_window: true) is not supported');
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    fail(`num_attention_heads (${c.num_attention_heads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  const headDim = c.head_dim ?? defaults.headDim(c);
  if (headDim % 2 !== 0) fail(`head_dim must be even for rotary embeddings, got ${headDim}`);
  // transformers >= 5 moved rope_theta and the scaling into rope_parameters.
  const rope = c.rope_parameters ?? c.rope_scaling;
  const eos = c.eos_token_id;
  return {
    modelType,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps ?? defaults.rmsNormEps,
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? defaults.ropeTheta,
    ropeScaling: ropeScaling(rope, fail),
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    qkNorm: modelType === 'qwen3',
    attentionBias: c.attention_bias ?? false,
    mlpBias: modelType === 'llama' ? (c.mlp_bias ?? false) : false,
    maxPositionEmbeddings: c.max_position_embeddings ?? defaults.maxPositions,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos],
    padTokenId: c.pad_token_id ?? null,
    checkpointDtype: c.torch_dtype ?? c.dtype ?? null,
  };
}

/**
 * The eos_token_id of `path` (a generation_config.json) as a list; none when the file is absent or has none. A file
 * that is not JSON, or an id that is not a non-negative integer, is a ModelConfigError naming it.
 */
export async function readGenerationEos(path: string): Promise<number[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ModelConfigError(`${path}: cannot read the generation config (${(err as Error).message})`);
  }
  let raw: { eos_token_id?: unknown };
  try {
    raw = parseJson(text) as { eos_token_id?: unknown };
  } catch (err) {
    throw new ModelConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const eos = raw?.eos_token_id;
  const ids = eos === null || eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
  if (!ids.every((id) => Number.isInteger(id) && id >= 0)) throw new ModelConfigError(`${path}: eos_token_id must be an id or a list of ids`);
  return ids as number[];
}

/** Reads and parses `path` (a config.json). */
export async function readModelConfig(path: string): Promise<{ config: ModelConfig; raw: Record<string, unknown> }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ModelConfigError(`${path}: cannot read the model config (${(err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (err) {
    throw new ModelConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return { config: parseModelConfig(raw, path), raw: raw as Record<string, unknown> };
}
