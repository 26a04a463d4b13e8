// Text renderings of the task. Format A is what the policy is trained on; B1 and B2 are the shifted
// formats of the ProcessBench-style sets; "actions" mimics Eurus-2-SFT's action tags within the task vocabulary.
import { problemAnswer, type Problem } from './problem.js';
import { correctTrace, type Trace, type TraceStep } from './trace.js';

/**
 * A: `Step 1: 7+5=12\nStep 2: 12*3=36\nAnswer: \boxed{36}` (the SFT/policy format)
 * B1: `Step 1: 7 + 5 = 12\n\nStep 2: 12 * 3 = 36. The final answer is \boxed{36}.` (mild shift; the
 *     ProcessBench evaluator's own layout of `Step i: ` labels joined by blank lines)
 * B2: `First, 7 plus 5 gives 12. Then 12 times 3 gives 36. So the answer is \boxed{36}.` (words)
 */
export type TraceFormat = 'A' | 'B1' | 'B2';
export const TRACE_FORMATS: readonly TraceFormat[] = ['A', 'B1', 'B2'];

/** What an SFT response can look like: a trace format or the action-tagged rendering. */
export type ResponseStyle = TraceFormat | 'actions';
export const RESPONSE_STYLES: readonly ResponseStyle[] = [...TRACE_FORMATS, 'actions'];

/** `Compute 7 +5 *3 -4 step by step.` */
export function renderPrompt(problem: Problem): string {
  return `Compute ${problem.start} ${renderOperations(problem)} step by step.`;
}

/** `+5 *3 -4` */
function renderOperations(problem: Problem): string {
  return problem.operations.map(({ op, operand }) => `${op}${operand}`).join(' ');
}

const OP_WORDS = { '+': 'plus', '-': 'minus', '*': 'times' } as const;

function equation(step: TraceStep, format: TraceFormat): string {
  const { left, op, operand, result } = step;
  switch (format) {
    case 'A':
      return `${left}${op}${operand}=${result}`;
    case 'B1':
      return `${left} ${op} ${operand} = ${result}`;
    case 'B2':
      return `${left} ${OP_WORDS[op]} ${operand} gives ${result}.`;
  }
}

function answerSentence(answer: number, format: TraceFormat): string {
  switch (format) {
    case 'A':
      return `\nAnswer: \\boxed{${answer}}`;
    case 'B1':
      return `. The final answer is \\boxed{${answer}}.`;
    case 'B2':
      return ` So the answer is \\boxed{${answer}}.`;
  }
}

/**
 * The step texts of a trace as a ProcessBench row stores them: no `Step i:` labels (the layout adds
 * those), and the answer sentence attached to the last step.
 */
export function traceStepTexts(trace: Trace, format: TraceFormat): string[] {
  return trace.map((step, index) => {
    const text = format === 'B2' ? `${index === 0 ? 'First, ' : 'Then '}${equation(step, format)}` : equation(step, format);
    return index === trace.length - 1 ? text + answerSentence(step.result, format) : text;
  });
}

const LAYOUT: Record<TraceFormat, { labels: boolean; separator: string }> = {
  A: { labels: true, separator: '\n' },
  B1: { labels: true, separator: '\n\n' },
  B2: { labels: false, separator: ' ' },
};

export interface LaidOutResponse {
  response: string;
  /** stepEnds[k]: end (exclusive) of step k with its trailing separator, as a character offset into `response`. */
  stepEnds: number[];
}

/**
 * Joins step texts into the response text of a format and reports where each step ends. With the
 * character-level task tokenizer a character offset is also a token offset within the response.
 */
export function layoutSteps(steps: readonly string[], format: TraceFormat): LaidOutResponse {
  const { labels, separator } = LAYOUT[format];
  let response = '';
  const stepEnds: number[] = [];
  steps.forEach((step, index) => {
    response += (labels ? `Step ${index + 1}: ` : '') + step + (index < steps.length - 1 ? separator : '');
    stepEnds.push(response.length);
  });
  return { response, stepEnds };
}

/** The response text of a trace (correct or not) in a trace format. */
export function renderTrace(trace: Trace, format: TraceFormat): string {
  return layoutSteps(traceStepTexts(trace, format), format).response;
}

/**
 * The correct solution of a problem in a response style. `actions` wraps the format-A steps in
 * Eurus-style action blocks, with parentheses for Eurus's brackets, which the task vocabulary lacks.
 */
export function renderSolution(problem: Problem, style: ResponseStyle = 'A'): string {
  const trace = correctTrace(problem);
  if (style !== 'actions') return renderTrace(trace, style);
  const answer = problemAnswer(problem);
  const count = problem.operations.length;
  const stepLines = trace.map((step, index) => `Step ${index + 1}: ${equation(step, 'A')}`).join('\n');
  return [
    `(ASSESS)\nStart at ${problem.start} and apply ${count} operation${count === 1 ? '' : 's'} in order: ${renderOperations(problem)}.\nNext action: (ADVANCE)`,
    `(ADVANCE)\n${stepLines}\nNext action: (VERIFY)`,
    `(VERIFY)\nEach step continues from the previous result, so the result is ${answer}.\nNext action: (OUTPUT)`,
    `(OUTPUT)\nThe answer is \\boxed{${answer}}.`,
  ].join('\n\n');
}
