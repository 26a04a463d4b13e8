// LoRA adapters in PEFT's folder format: adapter_config.json + adapter_model.safetensors, tensors named
// base_model.model.<module>.lora_A.weight / lora_B.weight.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** The seven projections of each layer: the default targets (the paper's). */
export const LORA_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
/**
 * Every module an adapter may target: the projections and the LM head (its output projection only: with tied
 * embeddings the input embedding is not adapted, as in PEFT; the fused head takes the head's adapter as a low-rank
 * term, still without [N, V] logits).
 */
export const LORA_TARGETS = [...LORA_PROJECTIONS, 'lm_head'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraOptions {
  rank: number;
  /** ΔW = (alpha / rank) · B A (alpha / √rank with rslora). */
  alpha: number;
  /** Default: the seven projections (LORA_PROJECTIONS); 'lm_head' adds the LM head. */
  targetModules?: LoraTarget[];
  /** Rank-stabilized scaling (default false). */
  rslora?: boolean;
}

/** The adapter as the native side takes it. */
export interface LoraConfig {
  rank: number;
  alpha: number;
  rslora: boolean;
  targetModules: LoraTarget[];
}

/** An adapter folder that cannot be used; the message names the file and the field. */
export class AdapterError extends Error {
  override readonly name = 'AdapterError';
}

const unsupported = (what: string) => ({ message: `${what} is not supported` });

const AdapterConfigSchema = z.looseObject({
  peft_type: z.literal('LORA', unsupported('an adapter other than LORA')),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  target_modules: z.array(
    z.enum(LORA_TARGETS),
    unsupported('target_modules other than a list of q/k/v/o/gate/up/down_proj and lm_head (a regex string)'),
  ),
  use_rslora: z.boolean().optional(),
  use_dora: z.literal(false, unsupported('DoRA (use_dora: true)')).optional(),
  bias: z.literal('none', unsupported('training biases (bias other than "none")')).optional(),
  fan_in_fan_out: z.literal(false, unsupported('fan_in_fan_out: true')).optional(),
  modules_to_save: z.array(z.string()).max(0, unsupported('modules_to_save')).nullish(),
  layers_to_transform: z.null(unsupported('layers_to_transform')).optional(),
  rank_pattern: z
    .record(z.string(), z.unknown())
    .refine((value) => Object.keys(value).length === 0, unsupported('rank_pattern'))
    .optional(),
  alpha_pattern: z
    .record(z.string(), z.unknown())
    .refine((value) => Object.keys(value).length === 0, unsupported('alpha_pattern'))
    .optional(),
});

export function loraConfig(options: LoraOptions): LoraConfig {
  return { rank: options.rank, alpha: options.alpha, rslora: options.rslora ?? false, targetModules: options.targetModules ?? [...LORA_PROJECTIONS] };
}

/** Reads and validates `dir`/adapter_config.json; lora_dropout is ignored (no dropout here). */
export async function readAdapterConfig(dir: string): Promise<LoraConfig> {
  const path = join(dir, ADAPTER_CONFIG);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new AdapterError(`${path}: cannot read the adapter config (${(err as Error).message})`);
  }
  const parsed = AdapterConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AdapterError(`${path}: ${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  if (!existsSync(join(dir, ADAPTER_WEIGHTS))) throw new AdapterError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  const c = parsed.data;
  return { rank: c.r, alpha: c.lora_alpha, rslora: c.use_rslora ?? false, targetModules: c.target_modules };
}

/** Writes adapter_config.json as PEFT does for a LoRA adapter of a causal LM. */
export async function writeAdapterConfig(dir: string, config: LoraConfig, baseModel: string | null): Promise<void> {
  await mkdir(dir, { recursive: true });
  const peft = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: 0,
    target_modules: config.targetModules,
    use_rslora: config.rslora,
    use_dora: false,
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
  };
  await writeFile(join(dir, ADAPTER_CONFIG), JSON.stringify(peft, null, 2) + '\n');
}
