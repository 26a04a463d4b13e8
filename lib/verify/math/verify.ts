import type { VerifyResult } from '../types.js';
import { mathAnswersEqual } from './equal.js';
import { extractMathAnswer, lastBoxed } from './extract.js';

/** Longest final answer judged: a longer one (a runaway box) fails without being parsed. */
export const MAX_ANSWER_LENGTH = 2_000;

/**
 * Judges a math response: its final answer (the last \boxed{}, else an "answer is" phrase) against
 * the reference, which may itself be boxed.
 */
export function verifyMath(response: string, groundTruth: string): VerifyResult {
  const extracted = extractMathAnswer(response);
  if (extracted === null) return { status: 'fail', extracted, detail: 'no final answer in the response' };
  if (extracted.length > MAX_ANSWER_LENGTH) {
    return {
      status: 'fail',
      extracted: extracted.slice(0, 100),
      detail: `the final answer is ${extracted.length} characters long (at most ${MAX_ANSWER_LENGTH})`,
    };
  }
  const reference = lastBoxed(groundTruth) ?? groundTruth;
  return mathAnswersEqual(extracted, reference)
    ? { status: 'pass', extracted }
    : { status: 'fail', extracted, detail: `answer differs from ${JSON.stringify(reference)}` };
}
