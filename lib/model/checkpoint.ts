// The Hugging Face checkpoint folder layout: config.json, the weights as model.safetensors or as shards listed by
// model.safetensors.index.json, and the tokenizer and generation files that travel with them.
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { AsyncOptions, Tensor } from '../tensor/tensor.js';
import { elementSize, writeSafetensors } from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** Files that are not weights but belong with them; save() copies those the source folder has. */
export const COMPANION_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
] as const;

/** transformers' default largest shard (5 GB). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** A checkpoint folder that cannot be read or written; the message names the folder or file. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

const IndexSchema = z.looseObject({ weight_map: z.record(z.string(), z.string()) });

/** The safetensors files of the checkpoint in `dir`: the index's shards in order, or the single file. */
export async function checkpointFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, INDEX_FILE);
  if (existsSync(indexPath)) {
    let parsed: z.output<typeof IndexSchema>;
    try {
      parsed = IndexSchema.parse(JSON.parse(await readFile(indexPath, 'utf8')));
    } catch (err) {
      throw new CheckpointError(
        `${indexPath}: not a safetensors index (${err instanceof z.ZodError ? 'needs a weight_map of tensor name to file' : (err as Error).message})`,
      );
    }
    const shards = [...new Set(Object.values(parsed.weight_map))];
    if (shards.length === 0) throw new CheckpointError(`${indexPath}: the weight_map is empty`);
    for (const shard of shards) {
      if (shard.includes('/') || shard.includes('\\'))
        throw new CheckpointError(`${indexPath}: shard '${shard}' must be a file name in the same folder`);
    }
    return shards.map((shard) => join(dir, shard));
  }
  const single = join(dir, SINGLE_FILE);
  if (existsSync(single)) return [single];
  throw new CheckpointError(`${dir}: no ${SINGLE_FILE} or ${INDEX_FILE} (only safetensors checkpoints are supported)`);
}

/** Groups tensors (in the given order) into shards of at most `maxBytes`; a larger tensor gets a shard of its own. */
export function planShards(tensors: [string, Tensor][], maxBytes: number): [string, Tensor][][] {
  const shards: [string, Tensor][][] = [];
  let current: [string, Tensor][] = [];
  let bytes = 0;
  for (const entry of tensors) {
    const size = entry[1].numel * elementSize(entry[1].dtype);
    if (current.length > 0 && bytes + size > maxBytes) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

function shardName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

export interface WriteCheckpointOptions extends AsyncOptions {
  /** Largest shard in bytes; more weights than this are written as model-0000N-of-0000M.safetensors + index. */
  maxShardBytes?: number;
  /** Copy COMPANION_FILES from this folder (the one the model was loaded from). */
  companionsFrom?: string;
}

/**
 * Writes config.json, the weights (single file or shards + index) and the companion files into `dir`, and removes
 * weight files of an earlier checkpoint there, so that a stale index can never shadow the new weights.
 */
export async function writeCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  tensors: [string, Tensor][],
  options: WriteCheckpointOptions = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const shards = planShards(tensors, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const names = shards.length === 1 ? [SINGLE_FILE] : shards.map((_, i) => shardName(i, shards.length));
  for (const [i, shard] of shards.entries()) {
    await writeSafetensors(join(dir, names[i]), Object.fromEntries(shard), { format: 'pt' }, options);
  }
  const weightFile = /^model(-\d{5}-of-\d{5})?\.safetensors$/;
  const stale = (file: string) => (weightFile.test(file) && !names.includes(file)) || (file === INDEX_FILE && shards.length === 1);
  for (const file of await readdir(dir)) {
    if (stale(file)) await rm(join(dir, file));
  }
  if (shards.length > 1) {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (const [i, shard] of shards.entries()) {
      for (const [name, tensor] of shard) {
        weightMap[name] = names[i];
        totalSize += tensor.numel * elementSize(tensor.dtype);
      }
    }
    const sortedMap = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    await writeFile(join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sortedMap }, null, 2) + '\n');
  }
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const from = options.companionsFrom;
  if (from && resolve(from) !== resolve(dir)) {
    for (const file of COMPANION_FILES) {
      if (existsSync(join(from, file))) await copyFile(join(from, file), join(dir, file));
    }
  }
}
