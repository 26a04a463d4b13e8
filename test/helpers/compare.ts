// Comparing two runs' numbers element by element, for the tests that check one path against another.

/**
 * max |a − b| / max(1, |b|) over the elements: an absolute error for small values, a relative one for large ones.
 * Equal values (equal infinities too) count 0; NaN on both sides counts 0, on one side Infinity.
 */
export function worstDifference(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let out = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) {
      if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
      return Infinity;
    }
    if (a[i] === b[i]) continue;
    out = Math.max(out, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  }
  return out;
}
