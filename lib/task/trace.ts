// Worked solutions as data: one step per operation, either all correct or with one injected error.
import { applyOp, VALUE_MAX, VALUE_MIN, type Op, type Problem } from './problem.js';
import type { Rng } from '../util/rng.js';

/** One written step `left op operand = result`; in a correct step, result = applyOp(left, op, operand). */
export interface TraceStep {
  left: number;
  op: Op;
  operand: number;
  result: number;
}

/** The steps of a solution; the answer it states is the last step's result. */
export type Trace = TraceStep[];

export function correctTrace(problem: Problem): Trace {
  return traceFrom(problem, -1, 0);
}

/**
 * Solves the problem, writing `wrongValue` instead of the true result at step `errorStep`; the later
 * steps continue correctly from the wrong value. errorStep -1 gives the correct trace.
 */
function traceFrom(problem: Problem, errorStep: number, wrongValue: number): Trace {
  const steps: Trace = [];
  let left = problem.start;
  problem.operations.forEach(({ op, operand }, index) => {
    const result = index === errorStep ? wrongValue : applyOp(left, op, operand);
    steps.push({ left, op, operand, result });
    left = result;
  });
  return steps;
}

export interface InjectedError {
  trace: Trace;
  /** 0-based index of the step whose result is wrong. */
  errorStep: number;
}

/**
 * Injects one arithmetic error at a uniformly drawn step. With probability 0.5 one digit of the
 * result is replaced, otherwise the result is moved by +-1, +-2 or +-10 (the other kind is used when
 * the drawn kind has no candidate). Every value of the erroneous trace stays in [0, 99]; a step with
 * no such candidate is skipped for another. The last step always has one (its result +-1), so this
 * always succeeds. The operations are injective, so the stated answer is always wrong.
 */
export function injectError(problem: Problem, rng: Rng): InjectedError {
  const correct = correctTrace(problem);
  const steps = correct.map((_, index) => index);
  while (steps.length > 0) {
    const errorStep = steps.splice(rng.int(0, steps.length - 1), 1)[0];
    const inRange = (wrong: number) => traceFrom(problem, errorStep, wrong).every(({ result }) => result >= VALUE_MIN && result <= VALUE_MAX);
    const truth = correct[errorStep].result;
    const digitSwaps = digitReplacements(truth).filter(inRange);
    const shifts = [-10, -2, -1, 1, 2, 10].map((delta) => truth + delta).filter(inRange);
    const [preferred, fallback] = rng.next() < 0.5 ? [digitSwaps, shifts] : [shifts, digitSwaps];
    const candidates = preferred.length > 0 ? preferred : fallback;
    if (candidates.length > 0) return { trace: traceFrom(problem, errorStep, rng.pick(candidates)), errorStep };
  }
  throw new Error(`injectError: no step of ${JSON.stringify(problem)} can take an error`);
}

/** Values with one decimal digit of `value` changed, never giving a leading zero. */
function digitReplacements(value: number): number[] {
  const digits = String(value);
  const values: number[] = [];
  for (let position = 0; position < digits.length; position++) {
    for (const digit of '0123456789') {
      if (digit === digits[position] || (position === 0 && digit === '0' && digits.length > 1)) continue;
      values.push(Number(digits.slice(0, position) + digit + digits.slice(position + 1)));
    }
  }
  return values;
}
