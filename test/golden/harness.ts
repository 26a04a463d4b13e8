// Shared pieces of the golden tests: loading the files, converting nested arrays to tensors, and comparisons that
// record which output keys a family checked (so an unchecked key in a new golden case fails the test).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, type DType } from '../../lib/tensor/index.js';

export interface Golden {
  params: Record<string, number>;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

export type ExpectClose = (name: string, actual: unknown, expected: unknown, rtol?: number) => void;

/** A family checker: computes the family's outputs from its inputs and compares every output key. */
export type FamilyCheck = (golden: Golden, expectClose: ExpectClose, dtype: 'float64' | 'float32') => void | Promise<void>;

export function goldenDir(): string {
  if (process.env.PREFIX_RL_GOLDEN_DIR) return resolve(process.env.PREFIX_RL_GOLDEN_DIR);
  return join(dirname(fileURLToPath(import.meta.url)), 'data');
}

export function goldenFiles(): { file: string; family: string; golden: Golden }[] {
  const dir = goldenDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      family: file.replace(/_\d+\.json$/, ''),
      golden: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Golden,
    }));
}

export function shapeOf(value: unknown): number[] {
  const shape: number[] = [];
  let level = value;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

export function flat(value: unknown): number[] {
  if (value instanceof Tensor) return Array.from(value.toArray() as ArrayLike<number | bigint>, Number);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number | bigint>, Number);
  if (Array.isArray(value)) return (value.flat(Infinity) as unknown[]).map(Number);
  return [Number(value)];
}

/** A nested-array golden input as a tensor of `dtype`. */
export function tensorOf(value: unknown, dtype: DType): Tensor {
  return Tensor.from(flat(value), shapeOf(value), { dtype });
}

/**
 * Compares element-wise: |a − e| ≤ rtol · max(|e|, floor). In float64 the floor is 1e-12 (pure relative error);
 * in float32 it is the tensor's largest |e| (norm-wise relative error), since an fp32 log-prob difference carries
 * absolute, not relative, rounding error.
 */
export function compare(name: string, actual: unknown, expected: unknown, rtol: number, dtype: 'float64' | 'float32'): string | null {
  const a = flat(actual);
  const e = flat(expected);
  if (a.length !== e.length) return `${name}: ${a.length} values, expected ${e.length}`;
  const scale = e.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const floor = dtype === 'float32' ? Math.max(scale, 1e-6) : 1e-12;
  for (let i = 0; i < e.length; i++) {
    if (Number.isNaN(e[i]) && Number.isNaN(a[i])) continue;
    const limit = rtol * Math.max(Math.abs(e[i]), floor);
    if (!(Math.abs(a[i] - e[i]) <= limit)) return `${name}[${i}]: got ${a[i]}, expected ${e[i]} (|diff| ${Math.abs(a[i] - e[i])} > ${limit})`;
  }
  return null;
}
