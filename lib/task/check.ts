// Independent step checker: labels a trace by parsing its text and re-executing every step, so
// ProcessBench labels never depend on what the error injector believes it did.
import { applyOp, type Op, type Problem } from './problem.js';
import type { TraceFormat } from './render.js';

const PROMPT = /^Compute (\d+)((?: [+\-*]\d+)+) step by step\.$/;

/** Reads a problem back from its prompt text (`Compute 7 +5 *3 -4 step by step.`). */
export function parsePrompt(prompt: string): Problem {
  const match = PROMPT.exec(prompt);
  if (!match) throw new Error(`not a task prompt: ${JSON.stringify(prompt)}`);
  const operations = match[2]
    .trim()
    .split(' ')
    .map((token) => ({ op: token[0] as Op, operand: Number(token.slice(1)) }));
  return { start: Number(match[1]), operations };
}

const WORD_OPS: Record<string, Op> = { plus: '+', minus: '-', times: '*' };

/** Per format: the step pattern, capturing left, op, operand, result and an optional stated answer. */
const STEP_PATTERNS: Record<TraceFormat, RegExp> = {
  A: /^(\d+)([+\-*])(\d+)=(\d+)(?:\nAnswer: \\boxed\{(\d+)\})?$/,
  B1: /^(\d+) ([+\-*]) (\d+) = (\d+)(?:\. The final answer is \\boxed\{(\d+)\}\.)?$/,
  B2: /^(?:First, |Then )(\d+) (plus|minus|times) (\d+) gives (\d+)\.(?: So the answer is \\boxed\{(\d+)\}\.)?$/,
};

interface ParsedStep {
  left: number;
  op: Op;
  operand: number;
  result: number;
  answer?: number;
}

function parseStep(text: string, format: TraceFormat): ParsedStep | null {
  const match = STEP_PATTERNS[format].exec(text);
  if (!match) return null;
  const [, left, op, operand, result, answer] = match;
  return {
    left: Number(left),
    op: WORD_OPS[op] ?? (op as Op),
    operand: Number(operand),
    result: Number(result),
    ...(answer !== undefined && { answer: Number(answer) }),
  };
}

/**
 * The 0-based index of the first wrong step, or -1 if every step is right. A step is wrong when it
 * does not parse, does not apply the problem's next operation, does not start from the previous
 * result, computes wrongly, or states an answer anywhere but at the last step (or a different one
 * from its result). A solution that stops before the last operation is wrong at its last step.
 */
export function firstWrongStep(prompt: string, steps: readonly string[], format: TraceFormat): number {
  if (steps.length === 0) throw new Error('firstWrongStep: a solution needs at least one step');
  const { start, operations } = parsePrompt(prompt);
  let previous = start;
  for (const [index, text] of steps.entries()) {
    const step = parseStep(text, format);
    const expected = operations[index];
    const isLast = index === steps.length - 1;
    if (
      step === null ||
      expected === undefined ||
      step.op !== expected.op ||
      step.operand !== expected.operand ||
      step.left !== previous ||
      step.result !== applyOp(step.left, step.op, step.operand) ||
      (isLast ? step.answer !== step.result : step.answer !== undefined)
    ) {
      return index;
    }
    previous = step.result;
  }
  return steps.length < operations.length ? steps.length - 1 : -1;
}
