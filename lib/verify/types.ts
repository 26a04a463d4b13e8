// The request and result shapes shared by every verifier, the worker pool and the `verify` CLI.
import type { CodeTests } from './code/tests.js';

export const VERIFY_KINDS = ['math', 'code', 'controlled'] as const;
export type VerifyKind = (typeof VERIFY_KINDS)[number];

/**
 * pass/fail: the response was judged. timeout: judging (or the candidate program) ran out of time.
 * error: the response could not be judged at all (bad request, sandbox unavailable, verifier crash).
 */
export type VerifyStatus = 'pass' | 'fail' | 'timeout' | 'error';

export interface VerifyRequest {
  kind: VerifyKind;
  /** The model's full response text. */
  response: string;
  /** math: the reference answer (plain or inside `\boxed{}`); controlled: the integer answer. */
  groundTruth?: string;
  /** code: the tests the extracted program must pass, or their JSON (as in Eurus-2 code rows). */
  tests?: CodeTests | string;
}

/** How the first failing run of a code item ended (absent when every test passed). */
export interface CodeFailure {
  /** 0-based index of the failing test run. */
  test: number;
  exitCode: number | null;
  signal: string | null;
  /** The last few KiB of the program's stderr. */
  stderrTail: string;
}

export interface CodeReport {
  language: string;
  /** Which sandbox ran the program; see docs/VERIFY.md. */
  containment: string;
  passed: number;
  total: number;
  failure?: CodeFailure;
}

export interface VerifyResult {
  status: VerifyStatus;
  /** The answer (math, controlled) or program (code) taken from the response; null when there was none. */
  extracted: string | null;
  /** Why the result is not a pass, in words. */
  detail?: string;
  code?: CodeReport;
}

/** A result for a request that could not be judged. */
export function errorResult(detail: string): VerifyResult {
  return { status: 'error', extracted: null, detail };
}
