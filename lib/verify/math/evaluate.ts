// Numeric meaning of one scalar answer: the Compute Engine parses the LaTeX, and equality is then
// tested on numbers (at shared sample points when the answer has variables), the way graders fall
// back to N(a) == N(b).
import { ComputeEngine } from '@cortex-js/compute-engine';

/** The package does not export its expression type; this is what parse() returns. */
type BoxedExpression = ReturnType<ComputeEngine['parse']>;

/** A complex value; real answers have im === 0. */
export interface Value {
  re: number;
  im: number;
}

export interface Evaluable {
  /** Free variables, by Compute Engine name (`x`, `theta`). */
  variables: readonly string[];
  /** The value with every variable bound by scope, or null when undefined there. */
  at(scope: Readonly<Record<string, number>>): Value | null;
}

/** Longer answers are compared as strings only: parsing prose is slow and meaningless. */
const MAX_SYMBOLIC_LENGTH = 300;
/**
 * A number literal in scientific form with an exponent of 6+ digits (1e400000000, 2\times10^{999999999999}) or the
 * factorial of a 6+ digit literal: the engine writes the literal out digit by digit (seconds, then out of memory or a
 * thrown error) or runs into its time limit, and as a float either is 0 or ∞ anyway, so it is not evaluated.
 */
const HUGE_NUMBER = /(?:\d[eE]|10\s*\^\s*\{?)\s*[-+]?\s*0*[1-9]\d{5}|(?<!\d)0*[1-9]\d{5,}\s*!/;

// One engine per thread: creating one costs ~50 ms, parsing with it a few ms. Parsing declares symbols and infers
// their types (after `r_0`, `r` is a list and `2r` parses as a tuple), so each verdict runs in a scope of its own
// (`isolated`): nothing one item declares outlives it, and verdicts never depend on what a worker judged before.
let engine: ComputeEngine | undefined;

/** Runs one verdict's parses in a fresh engine scope, dropped afterwards (about 0.3 ms). */
export function isolated<T>(judge: () => T): T {
  engine ??= new ComputeEngine();
  engine.pushScope();
  try {
    return judge();
  } finally {
    engine.popScope();
  }
}

/**
 * Subscripted names as single symbols: the engine reads `x_1` as an index into a list `x` (and `x_1+x_2` as
 * x_{2+1}), so `x_1`, `v_{0}`, `v_{max}` and `\theta_0` become `\mathrm{x1}`, `\mathrm{v0}`, `\mathrm{vmax}`,
 * `\mathrm{theta0}`, names no answer otherwise spells.
 */
export function subscriptSymbols(latex: string): string {
  // A command (\theta) or one letter, then _x or _{xyz}; other commands keep their subscripts (\log_2).
  return latex.replace(/(\\[a-zA-Z]+|[a-zA-Z])_(?:\{([a-zA-Z0-9]+)\}|([a-zA-Z0-9]))/g, (match, base: string, braced?: string, single?: string) => {
    if (base.startsWith('\\') && !GREEK.has(base.slice(1))) return match;
    return `\\mathrm{${base.replace('\\', '')}${braced ?? single}}`;
  });
}

const GREEK = new Set(['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'theta', 'lambda', 'mu', 'nu', 'rho', 'sigma', 'tau', 'phi', 'omega']);

/** A finite value, or null: NaN, overflow and non-numbers are not comparable (∞ answers compare as text). */
function toValue(re: unknown, im: unknown): Value | null {
  return typeof re === 'number' && typeof im === 'number' && Number.isFinite(re) && Number.isFinite(im) ? { re, im } : null;
}

/**
 * Float evaluation: compiled JavaScript first (fast, and towers like 10^{10^{10}} become Infinity
 * instead of hanging); the engine's own N() for what compilation rejects (complex numbers, n!).
 */
function evaluator(expression: BoxedExpression, ce: ComputeEngine): Evaluable['at'] {
  let compiled: ((scope: Record<string, number>) => unknown) | undefined;
  try {
    compiled = expression.compile();
  } catch {
    compiled = undefined;
  }
  if (compiled !== undefined) {
    const run = compiled;
    return (scope) => {
      try {
        const value = run({ ...scope });
        return typeof value === 'number' ? toValue(value, 0) : null;
      } catch {
        return null;
      }
    };
  }
  return (scope) => {
    const bound = Object.fromEntries(Object.entries(scope).map(([name, value]) => [name, ce.number(value)]));
    try {
      const value = expression.subs(bound).N();
      return toValue(value.re, value.im);
    } catch {
      return null; // The engine gave up (its time limit: 999999999999!): not comparable, not a verifier error.
    }
  };
}

/** The answer as something to evaluate, or null when it is not a valid mathematical expression. */
export function evaluable(latex: string): Evaluable | null {
  if (latex === '' || latex.length > MAX_SYMBOLIC_LENGTH) return null;
  // A run of 4+ letters outside a command is prose ("Monday", "no solution"), not a product of variables.
  if (/(?<![\\a-zA-Z])[a-zA-Z]{4,}/.test(latex)) return null;
  if (HUGE_NUMBER.test(latex)) return null;
  engine ??= new ComputeEngine();
  const expression = engine.parse(subscriptSymbols(latex));
  if (!expression.isValid) return null;
  return { variables: expression.unknowns, at: evaluator(expression, engine) };
}
