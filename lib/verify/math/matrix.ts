// Matrix expressions in answers, evaluated: products, sums, scalar multiples, transposes, inverses and integer
// powers of matrices with constant cells (`\begin{pmatrix}1&2\\3&4\end{pmatrix}^{-1}`), so an unevaluated expression
// answers its value. Anything else (a variable cell, a shape mismatch, a singular inverse) is not evaluated.
import { evaluable } from './evaluate.js';

type Value = { kind: 'scalar'; value: number } | { kind: 'matrix'; cells: number[][] };

const ENVIRONMENT = /\\begin\{([pbvBV]?matrix)\}(.*?)\\end\{\1\}/gs;

/** The cells of a matrix literal's body as numbers, or null when one is not a constant. */
function literalCells(body: string): number[][] | null {
  const rows = body.split('\\\\').filter((row) => row.trim() !== '');
  const cells = rows.map((row) =>
    row.split('&').map((cell) => {
      const value = evaluable(cell.trim());
      const at = value && value.variables.length === 0 ? value.at({}) : null;
      return at && at.im === 0 ? at.re : NaN;
    }),
  );
  return cells.length > 0 && cells.every((row) => row.length === cells[0].length && row.every(Number.isFinite)) ? cells : null;
}

const multiply = (a: number[][], b: number[][]): number[][] | null =>
  a[0].length !== b.length ? null : a.map((row) => b[0].map((_, j) => row.reduce((sum, x, k) => sum + x * b[k][j], 0)));
const transpose = (a: number[][]) => a[0].map((_, j) => a.map((row) => row[j]));
const identity = (n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));

/** Gauss-Jordan with partial pivoting; null when singular. */
function inverse(a: number[][]): number[][] | null {
  const n = a.length;
  if (a[0].length !== n) return null;
  const m = a.map((row, i) => [...row, ...identity(n)[i]]);
  for (let col = 0; col < n; col++) {
    const pivot = m.slice(col).reduce((best, row, k) => (Math.abs(row[col]) > Math.abs(m[best][col]) ? col + k : best), col);
    if (Math.abs(m[pivot][col]) < 1e-12) return null;
    [m[col], m[pivot]] = [m[pivot], m[col]];
    const scale = m[col][col];
    m[col] = m[col].map((x) => x / scale);
    for (let r = 0; r < n; r++) if (r !== col) m[r] = m[r].map((x, c) => x - m[r][col] * m[col][c]);
  }
  return m.map((row) => row.slice(n));
}

/**
 * The value of a matrix expression, as matrix cells written as decimals (12 significant digits), or null when the
 * text is no such expression.
 */
export function evaluateMatrixExpression(text: string): string[][] | null {
  const literals: number[][][] = [];
  let failed = false;
  const source = text.replace(ENVIRONMENT, (_, _env: string, body: string) => {
    const cells = literalCells(body);
    if (!cells) failed = true;
    literals.push(cells ?? []);
    return ` M${literals.length - 1} `;
  });
  if (failed || literals.length === 0) return null;
  const tokens = source.match(/M\d+|\^\{-1\}|\^\{?T\}?|\^\{?\d+\}?|\\cdot|\\times|\d+(?:\.\d+)?|[-+()]/g) ?? [];
  if (tokens.join('') !== source.replace(/\s+/g, '')) return null; // something the grammar does not know
  let position = 0;
  const peek = () => tokens[position];

  const combine = (a: Value, b: Value, op: '+' | '-' | '*'): Value | null => {
    if (a.kind === 'scalar' && b.kind === 'scalar')
      return { kind: 'scalar', value: op === '+' ? a.value + b.value : op === '-' ? a.value - b.value : a.value * b.value };
    if (op === '*') {
      if (a.kind === 'scalar' && b.kind === 'matrix') return { kind: 'matrix', cells: b.cells.map((row) => row.map((x) => a.value * x)) };
      if (a.kind === 'matrix' && b.kind === 'scalar') return { kind: 'matrix', cells: a.cells.map((row) => row.map((x) => x * b.value)) };
      const product = multiply((a as { cells: number[][] }).cells, (b as { cells: number[][] }).cells);
      return product && { kind: 'matrix', cells: product };
    }
    if (a.kind !== 'matrix' || b.kind !== 'matrix' || a.cells.length !== b.cells.length || a.cells[0].length !== b.cells[0].length) return null;
    return { kind: 'matrix', cells: a.cells.map((row, i) => row.map((x, j) => (op === '+' ? x + b.cells[i][j] : x - b.cells[i][j]))) };
  };

  const primary = (): Value | null => {
    const token = tokens[position++];
    if (token === undefined) return null;
    if (token === '(') {
      const inner = expression();
      return tokens[position++] === ')' ? inner : null;
    }
    if (token.startsWith('M')) return { kind: 'matrix', cells: literals[Number(token.slice(1))] };
    return /^\d/.test(token) ? { kind: 'scalar', value: Number(token) } : null;
  };
  const factor = (): Value | null => {
    if (peek() === '-') {
      position++;
      const inner = factor();
      return inner && combine({ kind: 'scalar', value: -1 }, inner, '*');
    }
    let value = primary();
    while (value && peek()?.startsWith('^')) {
      const power = tokens[position++].replace(/[\^{}]/g, '');
      if (value.kind === 'scalar') value = power === 'T' ? value : { kind: 'scalar', value: value.value ** Number(power) };
      else if (power === 'T') value = { kind: 'matrix', cells: transpose(value.cells) };
      else if (power === '-1') {
        const inverted = inverse(value.cells);
        value = inverted && { kind: 'matrix', cells: inverted };
      } else {
        let result: number[][] | null = identity(value.cells.length);
        for (let i = 0; i < Number(power) && result; i++) result = multiply(result, value.cells);
        value = result && { kind: 'matrix', cells: result };
      }
    }
    return value;
  };
  const term = (): Value | null => {
    let value = factor();
    while (value && peek() !== undefined && peek() !== '+' && peek() !== '-' && peek() !== ')') {
      if (peek() === '\\cdot' || peek() === '\\times') position++;
      const next = factor();
      value = next && combine(value, next, '*');
    }
    return value;
  };
  function expression(): Value | null {
    let value = term();
    while (value && (peek() === '+' || peek() === '-')) {
      const op = tokens[position++] as '+' | '-';
      const next = term();
      value = next && combine(value, next, op);
    }
    return value;
  }
  const value = expression();
  if (!value || position !== tokens.length || value.kind !== 'matrix') return null;
  return value.cells.map((row) => row.map((x) => String(Number(x.toPrecision(12)))));
}
