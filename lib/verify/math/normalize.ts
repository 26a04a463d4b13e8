// LaTeX answer normalisation: removes what graders treat as presentation (delimiters, spacing, units,
// degrees, percent, text wrappers, thousands separators) so that equal answers compare equal as
// strings, and leaves LaTeX the Compute Engine parses.

export interface NormalizedAnswer {
  text: string;
  /** A percent sign was removed: 50% may equal 50 or 0.5 (see equal.ts). */
  percent: boolean;
  /** The unit removed after the answer, in one spelling ("cm", "m^2"): two answers with different units differ. */
  unit?: string;
}

/** One spelling per unit: lower case, no spaces, dots or plural s; centimeters → cm, square feet → ft^2. */
const UNIT_SYNONYMS: Record<string, string> = {
  centimeter: 'cm',
  centimetre: 'cm',
  millimeter: 'mm',
  millimetre: 'mm',
  kilometer: 'km',
  kilometre: 'km',
  meter: 'm',
  metre: 'm',
  inche: 'in',
  inch: 'in',
  feet: 'ft',
  foot: 'ft',
  mile: 'mi',
  gram: 'g',
  kilogram: 'kg',
  second: 's',
  sec: 's',
  minute: 'min',
  hour: 'h',
  hr: 'h',
  degree: 'deg',
  pound: 'lb',
  liter: 'l',
  litre: 'l',
  squareunit: 'unit^2',
  squnit: 'unit^2',
  cubicunit: 'unit^3',
};

function canonicalUnit(raw: string): string {
  let unit = raw.toLowerCase().replace(/[\s.{}]/g, '');
  const square = /^(?:square|sq)/.test(unit) ? '^2' : /^cubic/.test(unit) ? '^3' : '';
  unit = unit.replace(/^(?:square|sq|cubic)/, '');
  const power = /\^([23])$/.exec(unit)?.[1];
  unit = unit.replace(/\^[23]$/, '');
  if (unit.length > 2 && unit.endsWith('s')) unit = unit.slice(0, -1);
  unit = UNIT_SYNONYMS[unit] ?? unit;
  return unit + (square || (power ? `^${power}` : ''));
}

/** Unit words dropped after a number ("5 cm", "12 dollars", "3 square units"). */
const UNIT_WORDS = [
  'square units?',
  'sq units?',
  'cubic units?',
  'units?',
  'square (?:feet|foot|inches|inch|meters?|metres?|cm|ft|miles?)',
  'cubic (?:feet|foot|inches|inch|meters?|metres?|cm|ft)',
  'feet',
  'foot',
  'ft',
  'inches',
  'inch',
  'yards?',
  'yd',
  'miles?',
  'mph',
  'km/h',
  'kmh',
  'meters?',
  'metres?',
  'cm',
  'mm',
  'km',
  'kilometers?',
  'centimeters?',
  'millimeters?',
  'kg',
  'grams?',
  'kilograms?',
  'lbs?',
  'pounds?',
  'oz',
  'ounces?',
  'liters?',
  'litres?',
  'ml',
  'gallons?',
  'seconds?',
  'secs?',
  'minutes?',
  'mins?',
  'hours?',
  'hrs?',
  'days?',
  'weeks?',
  'months?',
  'years?',
  'dollars?',
  'cents?',
  'euros?',
  'degrees?',
  'deg',
  'radians?',
  'points?',
  'people',
  'persons?',
  'students?',
  'ways',
  'times',
];
/** Unit letters that are also common variable names: dropped only after a space ("5 m", not "5m"). */
const SPACED_UNITS = ['m', 's', 'h', 'g', 'l', 'in', 'mi', 'rad'];
const longestFirst = (words: string[]) => [...words].sort((a, b) => b.length - a.length).join('|');
// An optional ^2 / ^3 follows the unit.
const TRAILING_UNIT = new RegExp(
  `(?<=[\\d}).])(?:\\s*(?:${longestFirst(UNIT_WORDS)})|\\s+(?:${longestFirst(SPACED_UNITS)}))(?:\\^\\{?[23]\\}?)?$`,
  'i',
);

/** `\text{...}`-like wrappers whose argument is plain text. */
const TEXT_COMMANDS = 'text|textbf|textit|textrm|mbox|mathrm|mathbf|mathit|mathsf';

/** Replaces `\cmd{arg}` (one brace level of nesting inside arg) by replace(arg). */
function replaceCommand(text: string, commands: string, replace: (arg: string) => string): string {
  const pattern = new RegExp(`\\\\(?:${commands})\\s*\\{((?:[^{}]|\\{[^{}]*\\})*)\\}`, 'g');
  return text.replace(pattern, (_, arg: string) => replace(arg));
}

/** Removes spaces, except the one that keeps a command apart from a following letter (`\pi r`). */
function removeSpaces(text: string): string {
  return text.replace(/\s+/g, (space, offset: number) =>
    /\\[a-zA-Z]+$/.test(text.slice(0, offset)) && /^[a-zA-Z]/.test(text.slice(offset + space.length)) ? ' ' : '',
  );
}

/** Plain-text function notation the Compute Engine would read as products of letters (`sqrt(3)`). */
function asciiToLatex(text: string): string {
  if (text.includes('\\')) return text;
  return text
    .replace(/\*\*/g, '^')
    .replace(/(?<![a-zA-Z])sqrt\s*\(((?:[^()]|\([^()]*\))*)\)/g, '\\sqrt{$1}')
    .replace(/(?<![a-zA-Z])(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|log|ln|exp)\s*(?=\()/g, '\\$1')
    .replace(/(?<![a-zA-Z])pi(?![a-zA-Z])/g, '\\pi ');
}

function binomial(n: bigint, k: bigint): bigint {
  if (k < 0n || k > n) return 0n;
  let result = 1n;
  for (let i = 1n; i <= k; i += 1n) result = (result * (n - k + i)) / i;
  return result;
}

const SMALL_NUMBERS =
  'zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen'.split(' ');
const TENS = 'twenty thirty forty fifty sixty seventy eighty ninety'.split(' ');

/** A whole answer spelled as a number word up to 99 ("five", "twenty-one", "Forty two"), or null. */
function numberWord(text: string): string | null {
  const words = text
    .toLowerCase()
    .trim()
    .split(/[\s-]+/);
  const small = (word: string) => SMALL_NUMBERS.indexOf(word);
  if (words.length === 1 && small(words[0]) >= 0) return String(small(words[0]));
  const tens = TENS.indexOf(words[0]);
  if (tens < 0 || words.length > 2) return null;
  if (words.length === 1) return String(20 + 10 * tens);
  const unit = small(words[1]);
  return unit >= 1 && unit <= 9 ? String(20 + 10 * tens + unit) : null;
}

/** A time of day as minutes after midnight ("3:30 PM", "15:30", "3:30\text{ p.m.}"), or null. */
function timeOfDay(text: string): string | null {
  const match = /^(\d{1,2}):(\d{2})\s*(?:\\text\{\s*)?([ap])?\.?\s*(?:m\.?)?\s*\}?$/i.exec(text.trim());
  if (!match) return null;
  let hours = Number(match[1]);
  const minutes = Number(match[2]);
  const half = match[3]?.toLowerCase();
  if (minutes > 59 || hours > 23 || (half && (hours < 1 || hours > 12))) return null;
  if (half === 'p' && hours !== 12) hours += 12;
  if (half === 'a' && hours === 12) hours = 0;
  return `\\text{time}${hours * 60 + minutes}`;
}

/**
 * A multiple-choice letter (A–E, capital) however it is dressed: "(C)", "C)", "\\text{(C)}", "\\textbf{C}",
 * "Option C" → "C"; null for anything else (a bare letter stays a possible variable and compares as text anyway).
 */
function choiceLetter(text: string): string | null {
  const match = /^(?:\\text(?:bf)?\{)?\s*(?:[Oo]ption\s+)?\(?([A-E])\)?\s*\}?$/.exec(text.trim());
  return match && /[()]|option|text/i.test(text) ? match[1] : null;
}

/** The normal form of one answer string. */
export function normalizeAnswer(raw: string): NormalizedAnswer {
  let text = raw.trim();
  let percent = false;
  let unit: string | undefined;
  // A plain-text mixed number: 2 1/3 → 2\frac{1}{3}.
  text = text.replace(/^([-+]?\d+)\s+(\d+)\/(\d+)$/, '$1\\frac{$2}{$3}');
  // Whole-answer forms first: a number word, a time of day, a dressed multiple-choice letter.
  const whole = numberWord(text.replace(/^\\text\{(.*)\}$/, '$1')) ?? timeOfDay(text) ?? choiceLetter(text);
  if (whole !== null) return { text: whole, percent };

  // Math delimiters and currency.
  text = text.replace(/^\\\[|\\\]$/g, '').replace(/^\\\(|\\\)$/g, '');
  text = text.replace(/\\\$/g, '').replace(/\$/g, '');
  text = text.replace(/\\(?:displaystyle|textstyle|scriptstyle)\b/g, '');

  // Sizing: \left( → (, \left. → nothing.
  text = text.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg)(?![a-zA-Z])\s*\.?/g, '');
  text = text.replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac');
  text = text.replace(/\\langle/g, '(').replace(/\\rangle/g, ')');

  // Spacing commands and line breaks.
  // (?<!\\) keeps a matrix row break `\\ ` intact.
  // A thousands separator written with LaTeX spacing: 11,\! 111 and 1{,}000 (MATH's golds).
  text = text.replace(/(\d)(?:,\\!|\{,\})\s*(?=\d{3}(?!\d))/g, '$1');
  text = text.replace(/(?<!\\)\\!/g, '').replace(/(?<!\\)\\[,;: ]|~|\\q?quad\b|\n/g, ' ');

  // Degrees after a plain number ("30^\circ", "(30^\circ, 150^\circ)"); inside an expression
  // (\cos(60^\circ)) the Compute Engine reads them itself.
  text = text.replace(/(?<=(?:^|[,;=[]|(?<![a-zA-Z])\()\s*[-+]?\d+(?:\.\d+)?)\s*(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ\b|°|\\degree\b)/g, '');

  // Percent.
  text = text.replace(/\\%|%|\\text\s*\{\s*percent\s*\}|\s*\bpercent\b/gi, () => {
    percent = true;
    return '';
  });

  // A trailing \text{...} after something else is a unit (kept aside); other text wrappers are unwrapped.
  const textUnit = /\\(?:text|mbox|textrm)\s*\{([^{}]*)\}\s*\.?\s*$/.exec(text);
  const withoutUnit = textUnit ? text.slice(0, textUnit.index).trim() : text;
  if (textUnit && withoutUnit !== '' && /[\d})\]]$/.test(withoutUnit)) {
    text = withoutUnit;
    unit = canonicalUnit(textUnit[1]);
  }
  text = replaceCommand(text, TEXT_COMMANDS, (arg) => arg);

  // Binomial coefficients of integers, which the Compute Engine does not parse.
  text = text.replace(/\\[dt]?binom\s*\{(\d+)\}\s*\{(\d+)\}|\{(\d+)\s*\\choose\s*(\d+)\}/g, (_, n1, k1, n2, k2) =>
    String(binomial(BigInt(n1 ?? n2), BigInt(k1 ?? k2))),
  );

  // Synonyms.
  text = text.replace(/\\(?:emptyset|varnothing)\b|∅/g, '\\{\\}');
  text = text.replace(/∞|\binfinity\b|\binf\b/gi, '\\infty ');
  text = text.replace(/\\mathbb\s*\{?R\}?/g, '(-\\infty,\\infty)');
  text = text
    .replace(/\\leq?(?![a-zA-Z])|\\leqslant\b|≤|<=/g, '\\le ')
    .replace(/\\geq?(?![a-zA-Z])|\\geqslant\b|≥|>=/g, '\\ge ')
    .replace(/\\neq?(?![a-zA-Z])|≠|!=/g, '\\ne ')
    .replace(/\\lt(?![a-zA-Z])/g, '<')
    .replace(/\\gt(?![a-zA-Z])/g, '>');
  text = text.replace(/\s+(?:and|or)\s+/g, ',');
  text = text.replace(/\{,\}/g, ',');

  // "x \in [1, 3)" → "[1, 3)".
  text = text.replace(/^[a-zA-Z]\s*\\in(?![a-zA-Z])/, '');

  // Trailing unit words and punctuation.
  for (let previous = ''; previous !== text;) {
    previous = text;
    text = text
      .trim()
      .replace(/[.,;:]$/, '')
      .replace(TRAILING_UNIT, (word: string) => {
        unit ??= canonicalUnit(word);
        return '';
      });
  }
  text = text.replace(/^:/, '');

  // Thousands separators, only when the whole answer is one number: "1,000" but not "(1,000)", "1,2"
  // or "30, 150" (hence before spaces go).
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(text)) text = text.replace(/,/g, '');
  text = asciiToLatex(text);
  text = removeSpaces(text);

  // Shorthand LaTeX arguments: \sqrt2, \frac12, \frac1{2}, \frac{1}2.
  text = text.replace(/\\sqrt([0-9a-zA-Z])/g, '\\sqrt{$1}');
  text = text.replace(/\\frac([0-9a-zA-Z])([0-9a-zA-Z])/g, '\\frac{$1}{$2}');
  text = text.replace(/\\frac([0-9a-zA-Z])(?=\{)/g, '\\frac{$1}');
  text = text.replace(/\\frac(\{[^{}]*\})([0-9a-zA-Z])/g, '\\frac$1{$2}');

  // A number in another base keeps its subscript in one spelling: 1011_{2} → 1011_2.
  text = text.replace(/(\d)_\{(\d+)\}/g, '$1_$2');

  // .5 → 0.5
  text = text.replace(/(^|[^\d])\.(?=\d)/g, (_, before: string) => `${before}0.`);

  return { text, percent, ...(unit && { unit }) };
}
