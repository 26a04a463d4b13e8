// Task data in the public datasets' row schemas, each set drawn from its own seed stream.
import type { ProcessBenchRecord, RlRecord, SftRecord } from '../data/schemas.js';
import { firstWrongStep } from './check.js';
import { generateProblem, problemAnswer, resolveTaskOptions, type Problem, type TaskOptions } from './problem.js';
import { renderPrompt, renderSolution, traceStepTexts, type ResponseStyle, type TraceFormat } from './render.js';
import { deriveSeed, Rng } from '../util/rng.js';
import { correctTrace, injectError } from './trace.js';

/** `data_source` of RL rows and `generator` of ProcessBench rows made here. */
export const TASK_SOURCE = 'prefix-rl/arith';

/** One problem with its prompt, correct response and answer, e.g. for SFT batches drawn on the fly. */
export interface TaskExample {
  problem: Problem;
  prompt: string;
  response: string;
  answer: number;
}

export function taskExample(problem: Problem, style: ResponseStyle = 'A'): TaskExample {
  return { problem, prompt: renderPrompt(problem), response: renderSolution(problem, style), answer: problemAnswer(problem) };
}

function problems(seed: number, stream: string, count: number, options: TaskOptions): Problem[] {
  const rng = new Rng(deriveSeed(seed, stream));
  return Array.from({ length: count }, () => generateProblem(rng, options));
}

/** Eurus-2-SFT-Data rows: a user prompt and the correct assistant response. */
export function makeSftRecords(seed: number, count: number, options: Partial<TaskOptions> = {}, style: ResponseStyle = 'A'): SftRecord[] {
  return problems(seed, 'sft', count, resolveTaskOptions(options)).map((problem) => {
    const { prompt, response } = taskExample(problem, style);
    return {
      messages: [
        { role: 'user', content: prompt },
        { role: 'assistant', content: response },
      ],
    };
  });
}

/**
 * Eurus-2-RL-Data rows: a user prompt and the answer as a rule-checked ground truth. The train and test splits draw
 * from separate seed streams (test prompts for held-out accuracy and Best-of-N).
 */
export function makeRlRecords(seed: number, count: number, options: Partial<TaskOptions> = {}, split: 'train' | 'test' = 'train'): RlRecord[] {
  return problems(seed, split === 'train' ? 'rl' : 'rl-test', count, resolveTaskOptions(options)).map((problem, index) => ({
    data_source: TASK_SOURCE,
    prompt: [{ role: 'user', content: renderPrompt(problem) }],
    ability: 'math',
    reward_model: { style: 'rule', ground_truth: String(problemAnswer(problem)) },
    extra_info: { split, index, depth: problem.operations.length },
  }));
}

/** A ProcessBench row plus the trace format its steps are written in (absent in the public set, which is B1-like). */
export type TaskProcessBenchRecord = ProcessBenchRecord & { trace_format: TraceFormat };

/**
 * ProcessBench-style sets over the same problems and errors in several trace formats. Even items are
 * correct (label -1); odd items carry exactly one injected error. Labels are recomputed by the
 * independent step checker, and a disagreement with the injector is a bug, so it throws.
 */
export function makeProcessBenchSets(
  seed: number,
  count: number,
  formats: readonly TraceFormat[],
  options: Partial<TaskOptions> = {},
): Map<TraceFormat, TaskProcessBenchRecord[]> {
  const resolved = resolveTaskOptions(options);
  const rng = new Rng(deriveSeed(seed, 'processbench'));
  const sets = new Map(formats.map((format) => [format, [] as TaskProcessBenchRecord[]]));
  for (let index = 0; index < count; index++) {
    const problem = generateProblem(rng, resolved);
    const { trace, errorStep: injectedStep } = index % 2 === 0 ? { trace: correctTrace(problem), errorStep: -1 } : injectError(problem, rng);
    const prompt = renderPrompt(problem);
    for (const [format, records] of sets) {
      const steps = traceStepTexts(trace, format);
      const label = firstWrongStep(prompt, steps, format);
      if (label !== injectedStep) {
        throw new Error(`step checker says ${label}, injector says ${injectedStep} for ${JSON.stringify({ prompt, steps })}`);
      }
      records.push({
        id: `arith-${index}`,
        generator: TASK_SOURCE,
        problem: prompt,
        steps,
        final_answer_correct: trace.at(-1)!.result === problemAnswer(problem),
        label,
        trace_format: format,
      });
    }
  }
  return sets;
}
