// A small seeded PRNG (mulberry32): every generated dataset, data order and prompt stream is reproducible from its seed.

export class Rng {
  private state_: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng seed must be an integer, got ${seed}`);
    this.state_ = seed >>> 0;
  }

  /** The generator's whole state: `new Rng(0).restore(rng.state)` continues where `rng` stands. */
  get state(): number {
    return this.state_;
  }

  restore(state: number): this {
    if (!(Number.isInteger(state) && state >= 0 && state <= 0xffffffff)) throw new Error(`Rng state must be a uint32, got ${state}`);
    this.state_ = state;
    return this;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    this.state_ = (this.state_ + 0x6d2b79f5) >>> 0;
    let t = this.state_;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo <= hi)) throw new Error(`Rng.int: bad range [${lo}, ${hi}]`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** 0..n-1 in a uniformly random order (Fisher-Yates). */
  permutation(n: number): number[] {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: no items');
    return items[Math.floor(this.next() * items.length)];
  }
}

/**
 * A seed for one named stream of a run (e.g. "sft", "rl"), so the streams do not shift when
 * another stream draws more numbers. FNV-1a over the name, mixed with the seed (murmur3 finalizer).
 */
export function deriveSeed(seed: number, stream: string): number {
  let hash = 0x811c9dc5;
  for (const char of stream) hash = Math.imul(hash ^ char.codePointAt(0)!, 0x01000193);
  let h = (hash ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
