// Batch-major [B][T] helpers with verl's HEAD conventions (masked_mean adds 1e-8; masked_var is Bessel-corrected;
// masked_whiten divides by sqrt(var + 1e-8)). Plain float64 JS: these tensors are small ([B, T]).
export type Matrix = number[][];

export function shapeCheck(name: string, x: Matrix, like: Matrix): void {
  if (x.length !== like.length || x.some((row, b) => row.length !== like[b].length)) {
    throw new Error(`${name} must have the shape of the mask [${like.length}, ${like[0]?.length ?? 0}]`);
  }
  for (const row of x) for (const v of row) if (!Number.isFinite(v)) throw new Error(`${name} contains NaN or Inf`);
}

export function validCount(mask: Matrix): number {
  let n = 0;
  for (const row of mask) for (const m of row) n += m;
  return n;
}

export function maskedSum(x: Matrix, mask: Matrix): number {
  let s = 0;
  x.forEach((row, b) => row.forEach((v, t) => (s += v * mask[b][t])));
  return s;
}

export function maskedMean(x: Matrix, mask: Matrix): number {
  return maskedSum(x, mask) / (validCount(mask) + 1e-8);
}

export function maskedVar(x: Matrix, mask: Matrix): number {
  const mean = maskedMean(x, mask);
  const centred = x.map((row) => row.map((v) => (v - mean) ** 2));
  const variance = maskedMean(centred, mask);
  const n = validCount(mask);
  if (n < 2) throw new Error('masked_var needs at least 2 valid positions (Bessel correction)');
  return (variance * n) / (n - 1);
}

/** (x − mean) / sqrt(var + 1e-8) at every position (verl returns unmasked values; callers mask). */
export function maskedWhiten(x: Matrix, mask: Matrix): Matrix {
  const mean = maskedMean(x, mask);
  const scale = 1 / Math.sqrt(maskedVar(x, mask) + 1e-8);
  return x.map((row) => row.map((v) => (v - mean) * scale));
}

/** Population mean and std of the masked entries (0 and 0 with no entries). */
export function maskedMoments(x: Matrix, mask: Matrix): { mean: number; std: number; count: number } {
  const count = validCount(mask);
  if (count === 0) return { mean: 0, std: 0, count };
  const mean = maskedSum(x, mask) / count;
  let ss = 0;
  x.forEach((row, b) => row.forEach((v, t) => (ss += mask[b][t] * (v - mean) ** 2)));
  return { mean, std: Math.sqrt(ss / count), count };
}

/** Σ_{i ≥ t} x_i per row. */
export function reverseCumsum(x: Matrix): Matrix {
  return x.map((row) => {
    const out = new Array<number>(row.length);
    let acc = 0;
    for (let t = row.length - 1; t >= 0; t--) out[t] = acc += row[t];
    return out;
  });
}

/** Masked reverse GAE: A_t = δ_t + γλ·A_{t+1} on valid positions, 0 (and a reset) elsewhere. */
export function maskedGae(delta: Matrix, mask: Matrix, gamma: number, lam: number): Matrix {
  return delta.map((row, b) => {
    const out = new Array<number>(row.length).fill(0);
    let next = 0;
    for (let t = row.length - 1; t >= 0; t--) {
      next = mask[b][t] ? row[t] + gamma * lam * next : 0;
      out[t] = next;
    }
    return out;
  });
}

/** Length of each row's response (Σ mask). */
export function lengths(mask: Matrix): number[] {
  return mask.map((row) => row.reduce((a, m) => a + m, 0));
}

/** Rows [g·n, (g+1)·n) form group g; B must be a multiple of n. */
export function contiguousGroups(batch: number, n: number): number[][] {
  if (!Number.isInteger(n) || n < 1 || batch % n !== 0) throw new Error(`group size n=${n} must divide the batch (B=${batch})`);
  return Array.from({ length: batch / n }, (_, g) => Array.from({ length: n }, (_, i) => g * n + i));
}

/** Rows grouped by equal `index` values, in order of first appearance. */
export function indexGroups(index: (number | string)[]): number[][] {
  const groups = new Map<number | string, number[]>();
  index.forEach((id, b) => {
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id)!.push(b);
  });
  return [...groups.values()];
}

export function broadcastRows(values: number[], mask: Matrix): Matrix {
  return mask.map((row, b) => row.map((m) => values[b] * m));
}
