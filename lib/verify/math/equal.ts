// Answer equivalence: structure first (tuples, intervals, sets, lists, matrices, equations), then
// scalars by string, by number with a relative tolerance, and by value at sample points.
import { evaluable, isolated, type Evaluable, type Value } from './evaluate.js';
import { exactInteger } from './integer.js';
import { evaluateMatrixExpression } from './matrix.js';
import { normalizeAnswer } from './normalize.js';

/** Relative tolerance of numeric comparisons (Qwen2.5-Math `math_equal` uses rel_tol=1e-4). */
export const RELATIVE_TOLERANCE = 1e-4;
/** Absolute floor, so that float noise around 0 (sin(pi) = 1e-16) still equals 0. */
const ABSOLUTE_TOLERANCE = 1e-9;

type Answer =
  | { kind: 'scalar'; text: string }
  | { kind: 'equation'; lhs: string; rhs: string }
  /** One relation or a chain (`1 < x \le 3`), written left to right with < and ≤ only (> and ≥ are flipped). */
  | { kind: 'relation'; terms: string[]; ops: RelationOp[] }
  /** Ordered, with its brackets: points, tuples, intervals. */
  | { kind: 'sequence'; open: string; close: string; items: Answer[] }
  /** Order-insensitive: sets, bare lists ("1, 2"), unions of intervals, the two values of ±. */
  | { kind: 'collection'; items: Answer[] }
  | { kind: 'matrix'; rows: Answer[][] };

type RelationOp = '<' | '\\le' | '\\ne';
const FLIPPED: Record<string, RelationOp> = { '>': '<', '\\ge': '\\le' };

/** Splits a relation or chain at <, >, \le, \ge, \ne outside brackets, in the direction of <. */
function parseRelation(text: string): { terms: string[]; ops: RelationOp[] } | null {
  const pieces = splitRelations(text);
  if (pieces.ops.length === 0 || pieces.terms.some((term) => term === '')) return null;
  const flipped = pieces.ops.every((op) => op in FLIPPED);
  if (!flipped && pieces.ops.some((op) => op in FLIPPED)) return null; // mixed directions: 1 < x > 0
  return flipped
    ? { terms: [...pieces.terms].reverse(), ops: pieces.ops.map((op) => FLIPPED[op]).reverse() }
    : { terms: pieces.terms, ops: pieces.ops as RelationOp[] };
}

function splitRelations(text: string): { terms: string[]; ops: string[] } {
  const { parts, separators } = splitOutsideBrackets(text, (at) => {
    const char = text[at];
    return char === '<' || char === '>' ? char : /^\\(?:le|ge|ne)(?![a-zA-Z])/.exec(text.slice(at))?.[0];
  });
  return { terms: parts.map((part) => part.trim()), ops: separators };
}

/**
 * A relation on one variable as the interval it describes (`x \ge 5` → [5, ∞), `1 < x \le 3` → (1, 3]), so it
 * answers an interval and the other way round; null for anything else.
 */
function relationInterval(relation: { terms: string[]; ops: RelationOp[] }): Answer | null {
  const { terms, ops } = relation;
  if (ops.includes('\\ne')) return null;
  const open = (op: RelationOp) => (op === '<' ? '(' : '[');
  const close = (op: RelationOp) => (op === '<' ? ')' : ']');
  const interval = (lo: string, openWith: string, hi: string, closeWith: string): Answer => ({
    kind: 'sequence',
    open: openWith,
    close: closeWith,
    items: [parseAnswer(lo), parseAnswer(hi)],
  });
  if (terms.length === 3 && NAMED_VALUE.test(terms[1])) return interval(terms[0], open(ops[0]), terms[2], close(ops[1]));
  if (terms.length !== 2) return null;
  if (NAMED_VALUE.test(terms[0])) return interval('-\\infty', '(', terms[1], close(ops[0]));
  if (NAMED_VALUE.test(terms[1])) return interval(terms[0], open(ops[0]), '\\infty', ')');
  return null;
}

const OPENERS = new Set(['(', '[', '{']);
const CLOSERS = new Set([')', ']', '}']);

/** A command separator (`\\cup`) found at index is really the start of a longer command (`\\cupola`). */
function continuesCommand(text: string, index: number, separator: string): boolean {
  return /^\\[a-zA-Z]+$/.test(separator) && /[a-zA-Z]/.test(text[index + separator.length] ?? '');
}

/**
 * Splits text at the separators `separatorAt` finds outside any bracket ((, [ and { nest alike, so "[1,3)" is one
 * part); `separatorAt(index)` returns the separator starting there, if any.
 */
function splitOutsideBrackets(text: string, separatorAt: (index: number) => string | undefined): { parts: string[]; separators: string[] } {
  const parts: string[] = [];
  const separators: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (OPENERS.has(char)) depth += 1;
    else if (CLOSERS.has(char)) depth -= 1;
    else if (depth === 0) {
      const separator = separatorAt(index);
      if (separator === undefined) continue;
      parts.push(text.slice(start, index));
      separators.push(separator);
      start = index + separator.length;
      index = start - 1;
    }
  }
  parts.push(text.slice(start));
  return { parts, separators };
}

/** Splits at one separator outside any bracket. */
function splitTopLevel(text: string, separator: string): string[] {
  return splitOutsideBrackets(text, (index) =>
    text.startsWith(separator, index) && !continuesCommand(text, index, separator) ? separator : undefined,
  ).parts;
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
const NAME = String.raw`(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?`;
const NAMED_VALUE = new RegExp(`^${NAME}$`);
/** What labels an answer: a name, a tuple of names ("(p,q) = (3,2)"), a function of one ("f(x) = 2x+1"). */
const LABEL = new RegExp(`^(?:${NAME}|\\(${NAME}(?:,${NAME})+\\)|[a-zA-Z]\\(${NAME}\\))$`);

function parseAnswer(text: string): Answer {
  const matrix = MATRIX.exec(text);
  if (matrix && !/\\begin\{/.test(matrix[2])) {
    const rows = splitTopLevel(matrix[2], '\\\\').filter((row) => row !== '');
    return { kind: 'matrix', rows: rows.map((row) => splitTopLevel(row, '&').map(parseAnswer)) };
  }
  // A matrix expression (a product, an inverse, ...) is its value.
  const evaluated = text.includes('\\begin{') ? evaluateMatrixExpression(text) : null;
  if (evaluated) return { kind: 'matrix', rows: evaluated.map((row) => row.map((cell): Answer => ({ kind: 'scalar', text: cell }))) };
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
  const relation = parseRelation(text);
  if (relation) return { kind: 'relation', ...relation };
  return { kind: 'scalar', text };
}

const INTEGER = /^[-+]?\d+$/;
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i;

/**
 * What a percent sign allows, as a factor on the reference: p% reads as p or p/100 (as Math-Verify), never p·100. A
 * reference 10% also matches 0.1 (×0.01), a predicted 10% also matches a reference 0.1 (×100); 1 when neither side
 * or both sides have one.
 */
type PercentScale = 1 | 0.01 | 100;

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

/** Reference values a prediction may match: the reference itself and, with a percent sign on one side, its scaled form. */
function percentForms(value: Value, percent: PercentScale): Value[] {
  if (percent === 1) return [value];
  return [1, percent].map((scale) => ({ re: value.re * scale, im: value.im * scale }));
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
function sameFunction(pred: Evaluable, ref: Evaluable, percent: PercentScale, negate = false): boolean {
  const variables = [...new Set([...pred.variables, ...ref.variables])];
  const points = variables.length === 0 ? 1 : SAMPLES.length;
  let compared = 0;
  for (let point = 0; point < points; point += 1) {
    const scope = Object.fromEntries(variables.map((name, index) => [name, SAMPLES[(point + 2 * index) % SAMPLES.length]]));
    const predValue = pred.at(scope);
    const refValue = ref.at(scope);
    if (predValue === null || refValue === null) continue;
    const target = negate ? { re: -refValue.re, im: -refValue.im } : refValue;
    if (!percentForms(target, variables.length === 0 ? percent : 1).some((form) => valuesClose(predValue, form))) return false;
    compared += 1;
  }
  return compared >= Math.min(points, MIN_DEFINED_POINTS);
}

/** A decimal literal as an exact value: digits × 10^-scale ("1.50" → 150, 2; "2e3" → 2, -3); any exponent fits a bigint. */
function exactDecimal(text: string): { digits: bigint; scale: bigint } {
  const [mantissa, exponent = '0'] = text.toLowerCase().split('e');
  const [whole, fraction = ''] = mantissa.replace(/^\+/, '').split('.');
  return {
    digits: BigInt(`${whole === '' || whole === '-' ? `${whole}0` : whole}${fraction}`),
    scale: BigInt(fraction.length) - BigInt(exponent),
  };
}

/** The same value without trailing zeros in its digits (150, 2 → 15, 1; zero is 0, 0): equal values, equal pairs. */
function lowestTerms({ digits, scale }: { digits: bigint; scale: bigint }): { digits: bigint; scale: bigint } {
  if (digits === 0n) return { digits, scale: 0n };
  const text = digits.toString();
  const zeros = text.length - text.replace(/0+$/, '').length;
  return { digits: BigInt(text.slice(0, text.length - zeros)), scale: scale - BigInt(zeros) };
}

/**
 * Two decimal literals are equal only as exact values (1 ≠ 1.0001), compared in lowest terms so that no power of ten
 * is ever expanded (1e999999999999 vs 1 is a quick no, not a BigInt overflow); a percent scale moves the reference's
 * exponent by 2.
 */
function decimalsEqual(pred: string, ref: string, percent: PercentScale): boolean {
  const a = lowestTerms(exactDecimal(pred));
  const b = lowestTerms(exactDecimal(ref));
  const shifts = percent === 1 ? [0n] : [0n, percent === 0.01 ? 2n : -2n];
  return a.digits === b.digits && (a.digits === 0n || shifts.some((shift) => a.scale === b.scale + shift));
}

/** Fewest significant digits of a rounded answer to an irrational or repeating value (about the 1e-4 of Qwen2.5-Math). */
export const MIN_ROUNDED_DIGITS = 4;

/** Significant digits of a decimal literal (0.0333 → 3). */
const significantDigits = (text: string) => text.replace(/e.*$/i, '').replace(/[-+.]/g, '').replace(/^0+/, '').length;

/**
 * A decimal literal answering an exact constant that is not one (1/3, √2, π): right when it is the constant rounded
 * to its own last digit with at least MIN_ROUNDED_DIGITS significant digits (0.3333, 1.4142 and 3.1416 pass; 3.14,
 * 0.333 and 0.33334 do not), or when it equals the constant (0.5 for 1/2).
 */
function roundedDecimalEqual(decimal: string, exact: Value): boolean {
  const value = Number(decimal);
  if (exact.im !== 0) return false;
  if (Math.abs(value - exact.re) <= 1e-12 * Math.max(1, Math.abs(exact.re))) return true;
  const places = Math.max(0, Number(exactDecimal(decimal).scale));
  return significantDigits(decimal) >= MIN_ROUNDED_DIGITS && Math.abs(value - exact.re) <= 0.5 * 10 ** -places * (1 + 1e-9);
}

const hasFraction = (text: string) => NUMBER.test(text) && /\./.test(text) && !/e/i.test(text);

/** A number written in another base (1011_2): it compares as written, never by value. */
const BASE_NUMBER = /\d_\d/;

function scalarsEqual(pred: string, ref: string, percent: PercentScale): boolean {
  if (pred.toLowerCase() === ref.toLowerCase()) return true;
  if (BASE_NUMBER.test(pred) || BASE_NUMBER.test(ref)) return false;
  if (INTEGER.test(pred) && INTEGER.test(ref) && percent === 1) return BigInt(pred) === BigInt(ref);
  if (NUMBER.test(pred) && NUMBER.test(ref)) return decimalsEqual(pred, ref, percent);
  // Integer arithmetic exactly (2^{64} ≠ 18446744073709551617, which floats cannot tell apart).
  if (percent === 1) {
    const [predInteger, refInteger] = [exactInteger(pred), exactInteger(ref)];
    if (predInteger !== null && refInteger !== null) return predInteger === refInteger;
  }
  const predValue = evaluable(pred);
  const refValue = evaluable(ref);
  if (predValue === null || refValue === null) return false;
  // A rounded decimal against an exact constant: the rounding rule, not a relative tolerance.
  for (const [decimal, other] of [
    [pred, refValue],
    [ref, predValue],
  ] as const) {
    if (hasFraction(decimal) && other.variables.length === 0 && percent === 1) {
      const exact = other.at({});
      return exact !== null && roundedDecimalEqual(decimal, exact);
    }
  }
  return sameFunction(predValue, refValue, percent);
}

/**
 * Two equations are equal when lhs − rhs agree up to a nonzero constant factor: sides swapped, both sides scaled
 * ("y = 2x", "2x - y = 0", "2y = 4x"). The factor is read at the first sample point where both differences are
 * nonzero, then checked at every point.
 */
function equationsEqual(pred: { lhs: string; rhs: string }, ref: { lhs: string; rhs: string }): boolean {
  const predDifference = evaluable(`(${pred.lhs})-(${pred.rhs})`);
  const refDifference = evaluable(`(${ref.lhs})-(${ref.rhs})`);
  if (predDifference === null || refDifference === null) return false;
  const variables = [...new Set([...predDifference.variables, ...refDifference.variables])];
  if (variables.length === 0) return sameFunction(predDifference, refDifference, 1);
  let factor: number | undefined;
  let compared = 0;
  for (let point = 0; point < SAMPLES.length; point += 1) {
    const scope = Object.fromEntries(variables.map((name, index) => [name, SAMPLES[(point + 2 * index) % SAMPLES.length]]));
    const p = predDifference.at(scope);
    const r = refDifference.at(scope);
    if (p === null || r === null || p.im !== 0 || r.im !== 0) continue;
    if (Math.abs(r.re) <= ABSOLUTE_TOLERANCE) {
      if (Math.abs(p.re) > ABSOLUTE_TOLERANCE) return false;
    } else {
      factor ??= p.re / r.re;
      if (Math.abs(factor) <= ABSOLUTE_TOLERANCE || !valuesClose({ re: p.re, im: 0 }, { re: factor * r.re, im: 0 })) return false;
    }
    compared += 1;
  }
  return factor !== undefined && compared >= MIN_DEFINED_POINTS;
}

function relationsEqual(pred: { terms: string[]; ops: RelationOp[] }, ref: { terms: string[]; ops: RelationOp[] }, percent: PercentScale): boolean {
  const same = (a: typeof pred, b: typeof pred) =>
    a.ops.length === b.ops.length &&
    a.ops.every((op, i) => op === b.ops[i]) &&
    a.terms.every((term, i) => answersEqual(parseAnswer(term), parseAnswer(b.terms[i]), percent));
  // x ≠ 3 reads the same both ways round.
  const reversed = { terms: [...pred.terms].reverse(), ops: [...pred.ops].reverse() };
  return same(pred, ref) || (pred.ops.every((op) => op === '\\ne') && same(reversed, ref));
}

/** Matches every reference item with a distinct predicted item, in any order. */
function unorderedEqual(pred: Answer[], ref: Answer[], percent: PercentScale): boolean {
  if (pred.length !== ref.length) return false;
  const unused = [...pred];
  for (const item of ref) {
    const index = unused.findIndex((candidate) => answersEqual(candidate, item, percent));
    if (index < 0) return false;
    unused.splice(index, 1);
  }
  return true;
}

function orderedEqual(pred: Answer[], ref: Answer[], percent: PercentScale): boolean {
  return pred.length === ref.length && pred.every((item, index) => answersEqual(item, ref[index], percent));
}

function answersEqual(pred: Answer, ref: Answer, percent: PercentScale): boolean {
  // "x = 3" answers "3" (and the other way round) when the left side only labels the value: a variable, a tuple of
  // them, a function of one; two labelled answers compare their values when the labels are the same.
  if (pred.kind === 'equation' && ref.kind !== 'equation' && LABEL.test(pred.lhs)) {
    return answersEqual(parseAnswer(pred.rhs), ref, percent);
  }
  if (ref.kind === 'equation' && pred.kind !== 'equation' && LABEL.test(ref.lhs)) {
    return answersEqual(pred, parseAnswer(ref.rhs), percent);
  }
  if (pred.kind === 'equation' && ref.kind === 'equation' && LABEL.test(pred.lhs) && pred.lhs === ref.lhs) {
    return answersEqual(parseAnswer(pred.rhs), parseAnswer(ref.rhs), percent);
  }
  // A relation on one variable and the interval it describes.
  if (pred.kind === 'relation' && ref.kind === 'sequence') {
    const interval = relationInterval(pred);
    return interval !== null && answersEqual(interval, ref, percent);
  }
  if (ref.kind === 'relation' && pred.kind === 'sequence') {
    const interval = relationInterval(ref);
    return interval !== null && answersEqual(pred, interval, percent);
  }
  switch (pred.kind) {
    case 'scalar':
      return ref.kind === 'scalar' && scalarsEqual(pred.text, ref.text, percent);
    case 'equation':
      return ref.kind === 'equation' && equationsEqual(pred, ref);
    case 'relation':
      return ref.kind === 'relation' && relationsEqual(pred, ref, percent);
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

/**
 * Whether a predicted answer equals the reference answer (both raw strings, e.g. box contents). Each call is judged
 * on its own: nothing the expression engine learns from one pair of answers carries over to the next (`isolated`).
 */
export function mathAnswersEqual(predicted: string, reference: string): boolean {
  const pred = normalizeAnswer(predicted);
  const ref = normalizeAnswer(reference);
  if (pred.text === '' || ref.text === '') return false;
  // Units matter when both answers give one: 5 km is not 5 m (a bare 5 answers either).
  if (pred.unit !== undefined && ref.unit !== undefined && pred.unit !== ref.unit) return false;
  if (pred.text.toLowerCase() === ref.text.toLowerCase()) return true;
  const percent: PercentScale = pred.percent === ref.percent ? 1 : ref.percent ? 0.01 : 100;
  return isolated(
    () =>
      answersEqual(parseAnswer(pred.text), parseAnswer(ref.text), percent) ||
      // The engineers' imaginary unit: 1 + 2j answers 1 + 2i when one side writes i and the other only j.
      (IMAGINARY_J.test(pred.text) !== IMAGINARY_J.test(ref.text) &&
        IMAGINARY_I.test(pred.text) !== IMAGINARY_I.test(ref.text) &&
        answersEqual(parseAnswer(withI(pred.text)), parseAnswer(withI(ref.text)), percent)),
  );
}

const IMAGINARY_J = /(?<![a-zA-Z\\])j(?![a-zA-Z])/;
const IMAGINARY_I = /(?<![a-zA-Z\\])i(?![a-zA-Z])/;
const withI = (text: string) => (IMAGINARY_I.test(text) ? text : text.replace(new RegExp(IMAGINARY_J.source, 'g'), 'i'));
