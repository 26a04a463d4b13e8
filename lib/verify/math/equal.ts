// Answer equivalence: structure first (tuples, intervals, sets, lists, matrices, equations), then
// scalars by string, by number with a relative tolerance, and by value at sample points.
import { evaluable, type Evaluable, type Value } from './evaluate.js';
import { normalizeAnswer } from './normalize.js';

/** Relative tolerance of numeric comparisons (Qwen2.5-Math `math_equal` uses rel_tol=1e-4). */
export const RELATIVE_TOLERANCE = 1e-4;
/** Absolute floor, so that float noise around 0 (sin(pi) = 1e-16) still equals 0. */
const ABSOLUTE_TOLERANCE = 1e-9;

type Answer =
  | { kind: 'scalar'; text: string }
  | { kind: 'equation'; lhs: string; rhs: string }
  /** Ordered, with its brackets: points, tuples, intervals. */
  | { kind: 'sequence'; open: string; close: string; items: Answer[] }
  /** Order-insensitive: sets, bare lists ("1, 2"), unions of intervals, the two values of ±. */
  | { kind: 'collection'; items: Answer[] }
  | { kind: 'matrix'; rows: Answer[][] };

const OPENERS = new Set(['(', '[', '{']);
const CLOSERS = new Set([')', ']', '}']);

/** A command separator (`\\cup`) found at index is really the start of a longer command (`\\cupola`). */
function continuesCommand(text: string, index: number, separator: string): boolean {
  return /^\\[a-zA-Z]+$/.test(separator) && /[a-zA-Z]/.test(text[index + separator.length] ?? '');
}

/** Splits at separators outside any bracket; (, [ and { nest alike, so "[1,3)" is one part. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (OPENERS.has(char)) depth += 1;
    else if (CLOSERS.has(char)) depth -= 1;
    else if (depth === 0 && text.startsWith(separator, index) && !continuesCommand(text, index, separator)) {
      parts.push(text.slice(start, index));
      start = index + separator.length;
      index = start - 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** The inside of text when its first bracket closes at its last character ("(1,2)", "[1,3)", "{x}"). */
function bracketed(text: string): { open: string; close: string; inner: string } | null {
  if (!OPENERS.has(text[0]) || !CLOSERS.has(text.at(-1)!)) return null;
  let depth = 0;
  for (let index = 0; index < text.length; index += 1) {
    if (OPENERS.has(text[index])) depth += 1;
    else if (CLOSERS.has(text[index]) && --depth === 0 && index < text.length - 1) return null;
  }
  return depth === 0 ? { open: text[0], close: text.at(-1)!, inner: text.slice(1, -1) } : null;
}

const MATRIX = /^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$/s;
/** A variable being named, not constrained: "x = 3", "k_1 = 2", "\theta = 30". */
const NAMED_VALUE = /^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?$/;

function parseAnswer(text: string): Answer {
  const matrix = MATRIX.exec(text);
  if (matrix) {
    const rows = splitTopLevel(matrix[2], '\\\\').filter((row) => row !== '');
    return { kind: 'matrix', rows: rows.map((row) => splitTopLevel(row, '&').map(parseAnswer)) };
  }
  for (const separator of ['\\cup', ',', ';']) {
    const parts = splitTopLevel(text, separator);
    if (parts.length > 1) return { kind: 'collection', items: parts.map(parseAnswer) };
  }
  if (text.startsWith('\\{') && text.endsWith('\\}')) {
    const inner = text.slice(2, -2);
    return { kind: 'collection', items: inner === '' ? [] : splitTopLevel(inner, ',').map(parseAnswer) };
  }
  const brackets = bracketed(text);
  if (brackets) {
    const items = splitTopLevel(brackets.inner, ',');
    // One item in brackets, or anything in TeX braces, is grouping: "(A)" is A.
    if (items.length === 1 || brackets.open === '{') return parseAnswer(brackets.inner);
    return { kind: 'sequence', open: brackets.open, close: brackets.close, items: items.map(parseAnswer) };
  }
  const plusMinus = splitTopLevel(text, '\\pm');
  if (plusMinus.length === 2) {
    const [before, after] = plusMinus;
    return { kind: 'collection', items: [parseAnswer(`${before}+${after}`), parseAnswer(`${before}-${after}`)] };
  }
  const sides = splitTopLevel(text, '=');
  if (sides.length === 2) return { kind: 'equation', lhs: sides[0], rhs: sides[1] };
  return { kind: 'scalar', text };
}

const INTEGER = /^[-+]?\d+$/;
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i;

const magnitude = (value: Value) => Math.hypot(value.re, value.im);
const isIntegral = (x: number) => Math.abs(x - Math.round(x)) <= ABSOLUTE_TOLERANCE * Math.max(1, Math.abs(x));

/** Equal within the relative tolerance; two different integers are never equal (1000 ≠ 1001). */
function valuesClose(a: Value, b: Value): boolean {
  if (a.im === 0 && b.im === 0 && isIntegral(a.re) && isIntegral(b.re) && Math.round(a.re) !== Math.round(b.re)) {
    return false;
  }
  const tolerance = Math.max(RELATIVE_TOLERANCE * Math.max(magnitude(a), magnitude(b)), ABSOLUTE_TOLERANCE);
  return Math.hypot(a.re - b.re, a.im - b.im) <= tolerance;
}

/** Reference values a prediction may match: with a percent sign on either side, 50 matches 50 and 0.5. */
function percentForms(value: Value, percent: boolean): Value[] {
  if (!percent) return [value];
  return [1, 0.01, 100].map((scale) => ({ re: value.re * scale, im: value.im * scale }));
}

// Sample coordinates for expressions with variables: irrational-ish, distinct (x and y never coincide
// by accident) and of both signs (so \sqrt{x^2} is not x).
const SAMPLES = [0.5772, -1.3247, 2.2361, -0.866, 1.618, 2.7183, -0.3679];
/** Points where both sides must be defined before two expressions count as the same function. */
const MIN_DEFINED_POINTS = 3;

/**
 * The same function of the union of their variables, judged at sample points (negate: pred = -ref).
 * Points where either side is undefined (a pole, the log of a negative) are skipped.
 */
function sameFunction(pred: Evaluable, ref: Evaluable, percent: boolean, negate = false): boolean {
  const variables = [...new Set([...pred.variables, ...ref.variables])];
  const points = variables.length === 0 ? 1 : SAMPLES.length;
  let compared = 0;
  for (let point = 0; point < points; point += 1) {
    const scope = Object.fromEntries(variables.map((name, index) => [name, SAMPLES[(point + 2 * index) % SAMPLES.length]]));
    const predValue = pred.at(scope);
    const refValue = ref.at(scope);
    if (predValue === null || refValue === null) continue;
    const target = negate ? { re: -refValue.re, im: -refValue.im } : refValue;
    if (!percentForms(target, percent && variables.length === 0).some((form) => valuesClose(predValue, form))) return false;
    compared += 1;
  }
  return compared >= Math.min(points, MIN_DEFINED_POINTS);
}

function scalarsEqual(pred: string, ref: string, percent: boolean): boolean {
  if (pred.toLowerCase() === ref.toLowerCase()) return true;
  if (INTEGER.test(pred) && INTEGER.test(ref) && !percent) return BigInt(pred) === BigInt(ref);
  if (NUMBER.test(pred) && NUMBER.test(ref)) {
    const value = { re: Number(pred), im: 0 };
    return percentForms({ re: Number(ref), im: 0 }, percent).some((form) => valuesClose(value, form));
  }
  const predValue = evaluable(pred);
  const refValue = evaluable(ref);
  return predValue !== null && refValue !== null && sameFunction(predValue, refValue, percent);
}

/** Two equations are equal when lhs - rhs agree up to sign ("y = 2x" and "2x - y = 0"). */
function equationsEqual(pred: { lhs: string; rhs: string }, ref: { lhs: string; rhs: string }): boolean {
  const predDifference = evaluable(`(${pred.lhs})-(${pred.rhs})`);
  const refDifference = evaluable(`(${ref.lhs})-(${ref.rhs})`);
  if (predDifference === null || refDifference === null) return false;
  return sameFunction(predDifference, refDifference, false) || sameFunction(predDifference, refDifference, false, true);
}

/** Matches every reference item with a distinct predicted item, in any order. */
function unorderedEqual(pred: Answer[], ref: Answer[], percent: boolean): boolean {
  if (pred.length !== ref.length) return false;
  const unused = [...pred];
  for (const item of ref) {
    const index = unused.findIndex((candidate) => answersEqual(candidate, item, percent));
    if (index < 0) return false;
    unused.splice(index, 1);
  }
  return true;
}

function orderedEqual(pred: Answer[], ref: Answer[], percent: boolean): boolean {
  return pred.length === ref.length && pred.every((item, index) => answersEqual(item, ref[index], percent));
}

function answersEqual(pred: Answer, ref: Answer, percent: boolean): boolean {
  // "x = 3" answers "3" (and the other way round) when the left side only names a variable.
  if (pred.kind === 'equation' && ref.kind !== 'equation' && NAMED_VALUE.test(pred.lhs)) {
    return answersEqual(parseAnswer(pred.rhs), ref, percent);
  }
  if (ref.kind === 'equation' && pred.kind !== 'equation' && NAMED_VALUE.test(ref.lhs)) {
    return answersEqual(pred, parseAnswer(ref.rhs), percent);
  }
  switch (pred.kind) {
    case 'scalar':
      return ref.kind === 'scalar' && scalarsEqual(pred.text, ref.text, percent);
    case 'equation':
      return ref.kind === 'equation' && equationsEqual(pred, ref);
    case 'sequence':
      if (ref.kind === 'sequence') {
        return pred.open === ref.open && pred.close === ref.close && orderedEqual(pred.items, ref.items, percent);
      }
      // A point may be written without its parentheses: "1, 2" answers "(1, 2)".
      return ref.kind === 'collection' && pred.open === '(' && pred.close === ')' && orderedEqual(pred.items, ref.items, percent);
    case 'collection':
      if (ref.kind === 'collection') return unorderedEqual(pred.items, ref.items, percent);
      return ref.kind === 'sequence' && ref.open === '(' && ref.close === ')' && orderedEqual(pred.items, ref.items, percent);
    case 'matrix':
      return (
        ref.kind === 'matrix' && pred.rows.length === ref.rows.length && pred.rows.every((row, index) => orderedEqual(row, ref.rows[index], percent))
      );
  }
}

/** Whether a predicted answer equals the reference answer (both raw strings, e.g. box contents). */
export function mathAnswersEqual(predicted: string, reference: string): boolean {
  const pred = normalizeAnswer(predicted);
  const ref = normalizeAnswer(reference);
  if (pred.text === '' || ref.text === '') return false;
  if (pred.text.toLowerCase() === ref.text.toLowerCase()) return true;
  return answersEqual(parseAnswer(pred.text), parseAnswer(ref.text), pred.percent || ref.percent);
}
