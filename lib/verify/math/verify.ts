import type { VerifyResult } from '../types.js';
import { mathAnswersEqual } from './equal.js';
import { extractMathAnswer, lastBoxed } from './extract.js';

/**
 * Judges a math response: its final answer (the last \boxed{}, else an "answer is" phrase) against
 * the reference, which may itself be boxed.
 */
export function verifyMath(response: string, groundTruth: string): VerifyResult {
  const extracted = extractMathAnswer(response);
  if (extracted === null) return { status: 'fail', extracted, detail: 'no final answer in the response' };
  const reference = lastBoxed(groundTruth) ?? groundTruth;
  return mathAnswersEqual(extracted, reference)
    ? { status: 'pass', extracted }
    : { status: 'fail', extracted, detail: `answer differs from ${JSON.stringify(reference)}` };
}
