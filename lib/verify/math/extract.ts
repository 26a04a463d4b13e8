// Finding the final answer in a response: the last \boxed{...} (or \fbox), else an "answer is" phrase.

const BOX_COMMAND = /\\(?:boxed|fbox)(?![a-zA-Z])/g;

/**
 * The content of the last `\boxed{...}` / `\fbox{...}` (braces balanced, `\{` and `\}` skipped), or
 * the token after `\boxed ` (`\boxed 5`). null when there is no box, or the last box is unterminated
 * (a truncated response has no final answer, even if an earlier box exists).
 */
export function lastBoxed(text: string): string | null {
  const last = [...text.matchAll(BOX_COMMAND)].at(-1);
  if (last === undefined) return null;
  const rest = text.slice(last.index + last[0].length);
  const open = /^\s*/.exec(rest)![0].length;
  if (rest[open] !== '{') {
    // `\boxed 5`: the next whitespace-free run, cut at a closing `$`.
    const token = /^\s+([^\s$]+)/.exec(rest);
    return token ? token[1] : null;
  }
  let depth = 0;
  for (let index = open; index < rest.length; index += 1) {
    const char = rest[index];
    if (char === '\\')
      index += 1; // an escaped brace does not count
    else if (char === '{') depth += 1;
    else if (char === '}' && --depth === 0) return rest.slice(open + 1, index);
  }
  return null;
}

// "The answer is 5.", "Final answer: $\frac12$", "The final answer is $5$. I hope it is correct.", and an
// "Answer: 5" line; the phrase needs its "is" or colon ("no final answer here" states none).
const ANSWER_PHRASE = /(?:(?:final answer|the answer)(?:\s+is\s*[:：]?|\s*[:：])|^\s*answer\s*[:：])\s*/gim;

/** The text after the last "the answer is" / "final answer:" phrase, up to the end of its line or math. */
function phraseAnswer(text: string): string | null {
  const last = [...text.matchAll(ANSWER_PHRASE)].at(-1);
  if (last === undefined) return null;
  const rest = text.slice(last.index + last[0].length);
  const math = /^\$\$?([^$]+)\$/.exec(rest) ?? /^\\\((.+?)\\\)/.exec(rest);
  const answer = math ? math[1] : rest.split('\n')[0];
  let trimmed = answer.trim().replace(/[.\s]+$/, '');
  if (!math) {
    // A sentence: what follows its last "is" or "=" ("the area is 12", "the total = 7").
    trimmed = /^[a-zA-Z][a-zA-Z\s,'-]*?(?:\bis|=)\s+(.+)$/.exec(trimmed)?.[1] ?? trimmed;
    // "12 apples", "7 ways to do it": a number followed only by words is the number.
    trimmed = /^([-+]?\d[\d,]*(?:\.\d+)?)\s+[a-zA-Z][a-zA-Z\s'-]*$/.exec(trimmed)?.[1] ?? trimmed;
  }
  return trimmed === '' ? null : trimmed;
}

/** The final answer of a math response, or null when it states none. */
export function extractMathAnswer(response: string): string | null {
  return lastBoxed(response) ?? phraseAnswer(response);
}
