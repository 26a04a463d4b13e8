// Reading and writing single safetensors files (the native reader maps the file; no whole-file copy).
import { withCancel } from '../tensor/cancel.js';
import { Tensor, type AsyncOptions, type DType } from '../tensor/tensor.js';
import { addon } from '../native/addon.js';

export interface SafetensorsContents {
  /** CPU tensors over the mapped file, by name (writing to them never changes the file). */
  tensors: Map<string, Tensor>;
  /** The header's __metadata__ (string to string). */
  metadata: Record<string, string>;
}

/** Reads every tensor of one .safetensors file. The tensors join the current `tidy` scope. */
export async function readSafetensors(path: string, options: AsyncOptions = {}): Promise<SafetensorsContents> {
  const raw = await withCancel(options.signal, (token) => addon().readSafetensors(path, token));
  const tensors = new Map<string, Tensor>();
  for (const [name, native] of Object.entries(raw.tensors)) tensors.set(name, Tensor.wrap(native));
  return { tensors, metadata: raw.metadata };
}

/**
 * Writes `tensors` (any device and dtype that safetensors stores) to `path`, through a temporary file and a rename.
 * `metadata` becomes the header's __metadata__; Hugging Face loaders expect `{ format: 'pt' }`.
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = { format: 'pt' },
  options: AsyncOptions = {},
): Promise<void> {
  const native = Object.fromEntries([...(tensors instanceof Map ? tensors : Object.entries(tensors))].map(([name, t]) => [name, t.native]));
  await withCancel(options.signal, (token) => addon().writeSafetensors(path, native, metadata, token));
}

/** Bytes per element, for planning shards. */
export function elementSize(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'bool':
    case 'uint8':
      return 1;
  }
}
