// The controlled reasoning task: a start value and a chain of +, -, * operations applied left to right.
// Operands are drawn so that every intermediate value stays in [0, 99]; no modulus is used.
import type { Rng } from '../util/rng.js';

export type Op = '+' | '-' | '*';
export const OPS: readonly Op[] = ['+', '-', '*'];

export interface Operation {
  op: Op;
  operand: number;
}

export interface Problem {
  start: number;
  operations: Operation[];
}

/** Every value a problem passes through (start, intermediates, answer) lies in this closed range. */
export const VALUE_MIN = 0;
export const VALUE_MAX = 99;

/** Difficulty knobs. Ranges are inclusive [lo, hi]. */
export interface TaskOptions {
  /** Number of operations, drawn uniformly from [minDepth, maxDepth]. */
  minDepth: number;
  maxDepth: number;
  startRange: [number, number];
  /** Operand range of + and -. */
  addRange: [number, number];
  /** Operand range of *. */
  mulRange: [number, number];
}

export const DEFAULT_TASK_OPTIONS: Readonly<TaskOptions> = {
  minDepth: 2,
  maxDepth: 6,
  startRange: [1, 20],
  addRange: [2, 9],
  mulRange: [2, 5],
};

/**
 * Fills in defaults and rejects knobs that could stall generation. With addRange[0] at most half of
 * VALUE_MAX, + or - always has a valid operand, so drawing another operation always terminates.
 */
export function resolveTaskOptions(options: Partial<TaskOptions> = {}): TaskOptions {
  const resolved = { ...DEFAULT_TASK_OPTIONS, ...options };
  const { minDepth, maxDepth, startRange, addRange, mulRange } = resolved;
  const isRange = ([lo, hi]: [number, number], min: number, max: number) =>
    Number.isInteger(lo) && Number.isInteger(hi) && min <= lo && lo <= hi && hi <= max;
  const problems = [
    !isRange([minDepth, maxDepth], 1, Number.MAX_SAFE_INTEGER) && `depth range [${minDepth}, ${maxDepth}] must be integers with 1 <= min <= max`,
    !isRange(startRange, VALUE_MIN, VALUE_MAX) && `startRange [${startRange}] must lie in [${VALUE_MIN}, ${VALUE_MAX}]`,
    !isRange(addRange, 1, Math.floor(VALUE_MAX / 2)) && `addRange [${addRange}] must lie in [1, ${Math.floor(VALUE_MAX / 2)}]`,
    !isRange(mulRange, 1, VALUE_MAX) && `mulRange [${mulRange}] must lie in [1, ${VALUE_MAX}]`,
  ].filter((problem): problem is string => typeof problem === 'string');
  if (problems.length > 0) throw new Error(`invalid task options: ${problems.join('; ')}`);
  return { minDepth, maxDepth, startRange: [...startRange], addRange: [...addRange], mulRange: [...mulRange] };
}

export function applyOp(value: number, op: Op, operand: number): number {
  switch (op) {
    case '+':
      return value + operand;
    case '-':
      return value - operand;
    case '*':
      return value * operand;
  }
}

/** Operands of `op` that keep `value` inside [VALUE_MIN, VALUE_MAX]. */
function validOperands(value: number, op: Op, options: TaskOptions): number[] {
  const [lo, hi] = op === '*' ? options.mulRange : options.addRange;
  const operands: number[] = [];
  for (let operand = lo; operand <= hi; operand++) {
    const next = applyOp(value, op, operand);
    if (next >= VALUE_MIN && next <= VALUE_MAX) operands.push(operand);
  }
  return operands;
}

/**
 * Draws one problem. Each operation is uniform over {+, -, *}, drawn again when it has no valid
 * operand; the operand is uniform over the valid ones. `depth` fixes the number of operations
 * (e.g. for batches of one depth); by default it is uniform over the options' depth range.
 */
export function generateProblem(rng: Rng, options: TaskOptions = resolveTaskOptions(), depth?: number): Problem {
  const operationCount = depth ?? rng.int(options.minDepth, options.maxDepth);
  if (!Number.isInteger(operationCount) || operationCount < 1) throw new Error(`generateProblem: bad depth ${operationCount}`);
  const start = rng.int(...options.startRange);
  const operations: Operation[] = [];
  let value = start;
  while (operations.length < operationCount) {
    const op = rng.pick(OPS);
    const operands = validOperands(value, op, options);
    if (operands.length === 0) continue;
    const operand = rng.pick(operands);
    operations.push({ op, operand });
    value = applyOp(value, op, operand);
  }
  return { start, operations };
}

/** The start value followed by the value after each operation; the last one is the answer. */
export function problemValues(problem: Problem): number[] {
  const values = [problem.start];
  for (const { op, operand } of problem.operations) values.push(applyOp(values[values.length - 1], op, operand));
  return values;
}

export function problemAnswer(problem: Problem): number {
  return problemValues(problem).at(-1)!;
}
