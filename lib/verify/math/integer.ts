// Integer arithmetic answers (2^{64}, 10^{20}+1, (10^9+7)(10^9+9)) evaluated exactly: as floats, integers past 2^53
// collide (2^{64} would equal 18446744073709551617). Sizes are bounded so that no answer makes the verifier hang or
// throw (BigInt's own limit): a larger result is left to float evaluation.

/** Largest exact result, in bits (about 20,000 digits). */
export const MAX_EXACT_BITS = 65_536;

const TOKEN = /\s*(\d+|\\cdot(?![a-zA-Z])|\\times(?![a-zA-Z])|[-+*^(){}])/y;
const TIMES = new Set(['\\cdot', '\\times', '*']);

/** An upper bound on the bits of |value|, without computing them exactly. */
const bits = (value: bigint) => (value < 0n ? -value : value).toString(16).length * 4;

/**
 * The value of an answer made only of integers, + and −, products (·, ×, *, or before a parenthesis), non-negative
 * integer powers (`^{...}` or one digit) and brackets; null for anything else, a negative power, 0^0, or a result (or
 * step) beyond MAX_EXACT_BITS.
 */
export function exactInteger(text: string): bigint | null {
  const tokens: string[] = [];
  const source = text.trim();
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    const match = TOKEN.exec(source);
    if (match === null) return null;
    tokens.push(match[1]);
  }
  let at = 0;
  const take = (token: string): boolean => {
    if (tokens[at] !== token) return false;
    at += 1;
    return true;
  };

  function sum(): bigint | null {
    let value = product();
    while (value !== null && (tokens[at] === '+' || tokens[at] === '-')) {
      const negate = tokens[at++] === '-';
      const term = product();
      value = term === null ? null : negate ? value - term : value + term;
    }
    return value;
  }
  function product(): bigint | null {
    let value = unary();
    while (value !== null && (TIMES.has(tokens[at]) || tokens[at] === '(')) {
      if (tokens[at] !== '(') at += 1;
      const factor = unary();
      value = factor === null || bits(value) + bits(factor) > MAX_EXACT_BITS ? null : value * factor;
    }
    return value;
  }
  function unary(): bigint | null {
    if (take('-')) {
      const value = unary();
      return value === null ? null : -value;
    }
    return take('+') ? unary() : power();
  }
  function power(): bigint | null {
    const base = atom();
    if (base === null || !take('^')) return base;
    // `2^10` is 2¹ then 0 in TeX: an unbraced exponent is one digit.
    const exponent = take('{') ? group('}') : /^\d$/.test(tokens[at] ?? '') ? BigInt(tokens[at++]) : null;
    if (exponent === null || exponent < 0n || (base === 0n && exponent === 0n)) return null;
    return BigInt(bits(base)) * exponent > MAX_EXACT_BITS ? null : base ** exponent;
  }
  function atom(): bigint | null {
    const token = tokens[at];
    if (token !== undefined && /^\d/.test(token)) {
      at += 1;
      return BigInt(token);
    }
    if (take('(')) return group(')');
    return take('{') ? group('}') : null;
  }
  function group(close: string): bigint | null {
    const value = sum();
    return value !== null && take(close) ? value : null;
  }

  const value = sum();
  return at === tokens.length ? value : null;
}
