// What every stage's config shares: reading a YAML file, `--set key.path=value` overrides, deep merging, the
// checkpoint section, and turning zod's issues into one error that names each bad key.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEVICE_PATTERN, TRAINING_DTYPES } from '../model/placement.js';

/**
 * Where every model of a stage lives and what it computes in, spread into each stage's schema as top-level keys
 * (`device: cuda`, `dtype: bfloat16`). bfloat16 trains in mixed precision: float32 master weights and AdamW
 * moments, bf16 compute (lib/model/placement.ts). `fusedHead` says how log-probs leave the LM head.
 */
export const placementFields = {
  device: z.string().regex(DEVICE_PATTERN, 'must be cpu, cuda or cuda:N').default('cpu'),
  dtype: z.enum(TRAINING_DTYPES).default('float32'),
  /**
   * Log-probs, entropies and candidate sets straight from hidden states through the fused LM head (no [N, V]
   * logits, ops/head_logprobs); false: the head's logits, then the fused objectives (the path kept for comparison).
   */
  fusedHead: z.boolean().default(true),
};

/** When a run checkpoints and how many checkpoints it keeps (the run layer, lib/run). */
export const CheckpointSection = z.strictObject({
  /** Checkpoint after every `every` steps (0: only at the end). */
  every: z.int().min(0).default(0),
  /** Checkpoints kept: the newest `keep`; older ones are deleted once a newer one is complete. */
  keep: z.int().positive().default(2),
});

/** Parses `input` with `schema`; a failure lists every bad key as `stage config: a.b: message; ...`. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new Error(
      `invalid ${what} config: ${result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')}`,
    );
  }
  return result.data;
}

/** A YAML (or JSON) config file as a mapping; the error names the file. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new Error(`${file}: not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${file}: a config must be a mapping`);
  return parsed as Record<string, unknown>;
}

/** `--set actor.lr=1e-5` → { actor: { lr: 1e-5 } }; the value is read as YAML (numbers, booleans, strings, lists). */
export function parseSetting(setting: string): Record<string, unknown> {
  const eq = setting.indexOf('=');
  if (eq <= 0) throw new Error(`--set ${setting}: expected key.path=value`);
  const path = setting.slice(0, eq).split('.');
  if (path.some((key) => key === '' || key === '__proto__' || key === 'constructor' || key === 'prototype'))
    throw new Error(`--set ${setting}: bad key path`);
  let value: unknown;
  try {
    value = parseYaml(setting.slice(eq + 1));
  } catch (err) {
    throw new Error(`--set ${setting}: the value is not YAML (${(err as Error).message.split('\n')[0]})`);
  }
  for (const key of path.reverse()) value = { [key]: value };
  return value as Record<string, unknown>;
}

/** `over` merged into `base`, key by key through nested mappings; undefined values in `over` are skipped. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const current = out[key];
    const bothObjects = [value, current].every((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
    out[key] = bothObjects ? deepMerge(current as Record<string, unknown>, value as Record<string, unknown>) : value;
  }
  return out;
}

/**
 * The config a stage runs with: the file (if any), then the `--set` overrides, then the flags (undefined flags are
 * not given and change nothing), merged in that order.
 */
export async function configInput(
  file: string | undefined,
  settings: readonly string[],
  flags: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const base = file ? await readConfigFile(file) : {};
  return deepMerge(settings.map(parseSetting).reduce(deepMerge, base), flags);
}
