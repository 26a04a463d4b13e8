import { lastBoxed } from './math/extract.js';
import type { VerifyResult } from './types.js';

const INTEGER = /^-?\d+$/;

/**
 * Judges a controlled-task response (`... Answer: \boxed{32}`): the last box must hold exactly the
 * ground-truth integer. No normalisation: "32.0", "+32" and "32 " are wrong.
 */
export function verifyControlled(response: string, groundTruth: string): VerifyResult {
  const expected = groundTruth.trim();
  if (!INTEGER.test(expected)) return { status: 'error', extracted: null, detail: `ground truth is not an integer: ${JSON.stringify(groundTruth)}` };
  const extracted = lastBoxed(response);
  if (extracted === null) return { status: 'fail', extracted, detail: 'no \\boxed{} answer in the response' };
  if (!INTEGER.test(extracted)) return { status: 'fail', extracted, detail: 'the boxed answer is not an integer' };
  return BigInt(extracted) === BigInt(expected) ? { status: 'pass', extracted } : { status: 'fail', extracted, detail: `expected ${expected}` };
}
