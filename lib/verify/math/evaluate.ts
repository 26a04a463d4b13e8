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

// One engine per thread: creating one costs ~50 ms, parsing with it a few ms.
let engine: ComputeEngine | undefined;

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
    const value = expression.subs(bound).N();
    return toValue(value.re, value.im);
  };
}

/** The answer as something to evaluate, or null when it is not a valid mathematical expression. */
export function evaluable(latex: string): Evaluable | null {
  if (latex === '' || latex.length > MAX_SYMBOLIC_LENGTH) return null;
  // A run of 4+ letters outside a command is prose ("Monday", "no solution"), not a product of variables.
  if (/(?<![\\a-zA-Z])[a-zA-Z]{4,}/.test(latex)) return null;
  engine ??= new ComputeEngine();
  const expression = engine.parse(latex);
  if (!expression.isValid) return null;
  return { variables: expression.unknowns, at: evaluator(expression, engine) };
}
