import { ProcessBenchRecordSchema, RlRecordSchema, SftRecordSchema } from '../lib/data/index.js';
import {
  DEFAULT_TASK_OPTIONS,
  RESPONSE_STYLES,
  TASK_CHARS,
  TRACE_FORMATS,
  VALUE_MAX,
  VALUE_MIN,
  correctTrace,
  firstWrongStep,
  generateProblem,
  injectError,
  layoutSteps,
  makeProcessBenchSets,
  makeRlRecords,
  makeSftRecords,
  parsePrompt,
  problemAnswer,
  problemValues,
  renderPrompt,
  renderSolution,
  renderTrace,
  resolveTaskOptions,
  traceStepTexts,
  type Problem,
  type Trace,
} from '../lib/task/index.js';
import { Rng, deriveSeed } from '../lib/util/rng.js';

const problemsFrom = (seed: number, count: number, options = resolveTaskOptions()) => {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => generateProblem(rng, options));
};

describe('Rng', () => {
  test('is deterministic per seed and uniform enough', () => {
    const draw = (seed: number) =>
      Array.from(
        { length: 5 },
        (
          (rng) => () =>
            rng.next()
        )(new Rng(seed)),
      );
    expect(draw(1)).toEqual(draw(1));
    expect(draw(1)).not.toEqual(draw(2));
    const rng = new Rng(7);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60000; i++) counts[rng.int(0, 5)] += 1;
    for (const count of counts) expect(Math.abs(count - 10000)).toBeLessThan(400);
  });

  test('derived seeds differ by stream and by seed', () => {
    const seeds = new Set([deriveSeed(0, 'sft'), deriveSeed(0, 'rl'), deriveSeed(1, 'sft'), deriveSeed(1, 'rl')]);
    expect(seeds.size).toBe(4);
    expect(deriveSeed(5, 'sft')).toBe(deriveSeed(5, 'sft'));
  });
});

describe('problem generator', () => {
  test('same seed gives the same problems, another seed different ones', () => {
    expect(problemsFrom(42, 50)).toEqual(problemsFrom(42, 50));
    expect(problemsFrom(42, 50)).not.toEqual(problemsFrom(43, 50));
  });

  test('follows the task rules on many problems', () => {
    const problems = problemsFrom(3, 5000);
    const broken = problems.filter(
      (problem) =>
        problem.start < 1 ||
        problem.start > 20 ||
        problem.operations.some(({ op, operand }) => (op === '*' ? operand < 2 || operand > 5 : operand < 2 || operand > 9)) ||
        problemValues(problem).some((value) => value < VALUE_MIN || value > VALUE_MAX),
    );
    expect(broken).toEqual([]);
    expect([...new Set(problems.map((problem) => problem.operations.length))].sort()).toEqual([2, 3, 4, 5, 6]);
    expect([...new Set(problems.flatMap((problem) => problem.operations.map(({ op }) => op)))].sort()).toEqual(['*', '+', '-']);
  });

  test('difficulty knobs and a fixed depth', () => {
    const options = resolveTaskOptions({ minDepth: 8, maxDepth: 8, startRange: [90, 99], mulRange: [3, 3] });
    for (const problem of problemsFrom(1, 200, options)) {
      expect(problem.operations).toHaveLength(8);
      expect(Math.max(...problemValues(problem))).toBeLessThanOrEqual(VALUE_MAX);
    }
    expect(generateProblem(new Rng(0), resolveTaskOptions(), 4).operations).toHaveLength(4);
  });

  test('rejects knobs that could stall or break generation', () => {
    expect(() => resolveTaskOptions({ minDepth: 3, maxDepth: 2 })).toThrow(/depth range/);
    expect(() => resolveTaskOptions({ startRange: [0, 100] })).toThrow(/startRange/);
    expect(() => resolveTaskOptions({ addRange: [60, 70] })).toThrow(/addRange/);
    expect(() => resolveTaskOptions({ mulRange: [0, 2] })).toThrow(/mulRange/);
    expect(resolveTaskOptions()).toEqual(DEFAULT_TASK_OPTIONS);
  });
});

// The worked example of the controlled-task facts: 7 +5 *3 -4 = 32.
const example: Problem = {
  start: 7,
  operations: [
    { op: '+', operand: 5 },
    { op: '*', operand: 3 },
    { op: '-', operand: 4 },
  ],
};
// The facts' ProcessBench example: 18 *2 -2 -4 with a wrong first step (38 for 36).
const wrongFirstStep: Trace = [
  { left: 18, op: '*', operand: 2, result: 38 },
  { left: 38, op: '-', operand: 2, result: 36 },
  { left: 36, op: '-', operand: 4, result: 32 },
];

describe('renderers', () => {
  test('prompt and format A match the facts exactly', () => {
    expect(renderPrompt(example)).toBe('Compute 7 +5 *3 -4 step by step.');
    expect(renderSolution(example)).toBe('Step 1: 7+5=12\nStep 2: 12*3=36\nStep 3: 36-4=32\nAnswer: \\boxed{32}');
    expect(problemAnswer(example)).toBe(32);
  });

  test('formats A, B1 and B2 of a trace with an error', () => {
    expect(renderTrace(wrongFirstStep, 'A')).toBe('Step 1: 18*2=38\nStep 2: 38-2=36\nStep 3: 36-4=32\nAnswer: \\boxed{32}');
    expect(renderTrace(wrongFirstStep, 'B1')).toBe(
      'Step 1: 18 * 2 = 38\n\nStep 2: 38 - 2 = 36\n\nStep 3: 36 - 4 = 32. The final answer is \\boxed{32}.',
    );
    expect(renderTrace(wrongFirstStep, 'B2')).toBe(
      'First, 18 times 2 gives 38. Then 38 minus 2 gives 36. Then 36 minus 4 gives 32. So the answer is \\boxed{32}.',
    );
    expect(traceStepTexts(wrongFirstStep, 'B1')).toEqual(['18 * 2 = 38', '38 - 2 = 36', '36 - 4 = 32. The final answer is \\boxed{32}.']);
  });

  test('layoutSteps marks where each step and its separator end', () => {
    const steps = traceStepTexts(correctTrace(example), 'A');
    const { response, stepEnds } = layoutSteps(steps, 'A');
    expect(stepEnds.map((end, k) => response.slice(k === 0 ? 0 : stepEnds[k - 1], end))).toEqual([
      'Step 1: 7+5=12\n',
      'Step 2: 12*3=36\n',
      'Step 3: 36-4=32\nAnswer: \\boxed{32}',
    ]);
    expect(stepEnds.at(-1)).toBe(response.length);
  });

  test('action-tagged style', () => {
    expect(renderSolution(example, 'actions')).toBe(
      [
        '(ASSESS)\nStart at 7 and apply 3 operations in order: +5 *3 -4.\nNext action: (ADVANCE)',
        '(ADVANCE)\nStep 1: 7+5=12\nStep 2: 12*3=36\nStep 3: 36-4=32\nNext action: (VERIFY)',
        '(VERIFY)\nEach step continues from the previous result, so the result is 32.\nNext action: (OUTPUT)',
        '(OUTPUT)\nThe answer is \\boxed{32}.',
      ].join('\n\n'),
    );
  });

  test('every rendered character is in the task vocabulary', () => {
    const vocabulary = new Set(TASK_CHARS);
    const rng = new Rng(11);
    const seen = new Set<string>();
    for (const problem of problemsFrom(5, 500)) {
      const texts = [renderPrompt(problem), ...RESPONSE_STYLES.map((style) => renderSolution(problem, style))];
      const { trace } = injectError(problem, rng);
      texts.push(...TRACE_FORMATS.map((format) => renderTrace(trace, format)));
      for (const char of texts.join('')) seen.add(char);
    }
    expect([...seen].filter((char) => !vocabulary.has(char))).toEqual([]);
  });
});

describe('error injection and the independent step checker', () => {
  test('the checker agrees with the injector on many items, in every format', () => {
    const rng = new Rng(99);
    const disagreements: unknown[] = [];
    let digitOnlyErrors = 0; // errors that only a digit replacement makes, not a +-1, +-2 or +-10 shift
    for (const problem of problemsFrom(21, 3000)) {
      const prompt = renderPrompt(problem);
      const correct = correctTrace(problem);
      const injected = injectError(problem, rng);
      const { trace, errorStep } = injected;
      const shift = Math.abs(trace[errorStep].result - correct[errorStep].result);
      if (![1, 2, 10].includes(shift)) digitOnlyErrors += 1;
      // Only the result at errorStep is off; later steps continue from it, so the answer is wrong too.
      const wellFormed =
        errorStep >= 0 &&
        errorStep < problem.operations.length &&
        shift !== 0 &&
        JSON.stringify(trace.slice(0, errorStep)) === JSON.stringify(correct.slice(0, errorStep)) &&
        trace.every(({ result }) => result >= VALUE_MIN && result <= VALUE_MAX) &&
        trace.at(-1)!.result !== problemAnswer(problem);
      if (!wellFormed) disagreements.push({ problem, injected });
      for (const format of TRACE_FORMATS) {
        const wrongAt = firstWrongStep(prompt, traceStepTexts(trace, format), format);
        const correctLabel = firstWrongStep(prompt, traceStepTexts(correct, format), format);
        if (wrongAt !== errorStep || correctLabel !== -1) disagreements.push({ format, problem, injected, wrongAt, correctLabel });
      }
    }
    expect(disagreements).toEqual([]);
    // Half the errors replace a digit; about two thirds of those are not also a small shift.
    expect(digitOnlyErrors / 3000).toBeGreaterThan(0.25);
    expect(digitOnlyErrors / 3000).toBeLessThan(0.45);
  });

  test('error positions cover every step', () => {
    const rng = new Rng(4);
    const positions = new Set<number>();
    for (const problem of problemsFrom(8, 500)) positions.add(injectError(problem, rng).errorStep);
    expect([...positions].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test('the checker flags skipped, reordered, non-continuing and malformed steps', () => {
    const prompt = renderPrompt(example);
    const steps = (format: 'A' | 'B1' | 'B2') => traceStepTexts(correctTrace(example), format);
    const a = steps('A');
    expect(firstWrongStep(prompt, a, 'A')).toBe(-1);
    expect(firstWrongStep(prompt, [a[0], '12*3=37', a[2]], 'A')).toBe(1);
    expect(firstWrongStep(prompt, [a[0], '13*3=39', '39-4=35\nAnswer: \\boxed{35}'], 'A')).toBe(1);
    expect(firstWrongStep(prompt, [a[0], '12+3=15', '15-4=11\nAnswer: \\boxed{11}'], 'A')).toBe(1);
    expect(firstWrongStep(prompt, [a[0], a[1], '36-4=32\nAnswer: \\boxed{33}'], 'A')).toBe(2);
    expect(firstWrongStep(prompt, [a[0], a[1], '36-4=32'], 'A')).toBe(2);
    expect(firstWrongStep(prompt, [a[0], '12*3=36\nAnswer: \\boxed{36}'], 'A')).toBe(1);
    expect(firstWrongStep(prompt, [a[0], a[1] + '\nAnswer: \\boxed{36}', a[2]], 'A')).toBe(1);
    expect(firstWrongStep(prompt, [a[0], a[1], '36-4=32', '32+1=33\nAnswer: \\boxed{33}'], 'A')).toBe(3);
    expect(firstWrongStep(prompt, ['7 + 5 = 12', ...a.slice(1)], 'A')).toBe(0);
    expect(firstWrongStep(prompt, steps('B1'), 'A')).toBe(0);
    expect(firstWrongStep(prompt, steps('B2'), 'B2')).toBe(-1);
    expect(() => firstWrongStep('What is 2+2?', a, 'A')).toThrow(/not a task prompt/);
  });

  test('parsePrompt reads back the generated problem', () => {
    for (const problem of problemsFrom(17, 200)) expect(parsePrompt(renderPrompt(problem))).toEqual(problem);
  });
});

describe('task datasets', () => {
  test('SFT and RL rows fit the Eurus-2 schemas and are deterministic', () => {
    const sft = makeSftRecords(1, 30);
    expect(sft).toEqual(makeSftRecords(1, 30));
    expect(sft).not.toEqual(makeSftRecords(2, 30));
    for (const row of sft) expect(SftRecordSchema.parse(row)).toEqual(row);
    expect(makeSftRecords(1, 3, {}, 'actions')[0].messages[1].content).toMatch(/^\(ASSESS\)/);

    const rl = makeRlRecords(1, 30, { minDepth: 3, maxDepth: 3 });
    for (const row of rl) {
      expect(RlRecordSchema.parse(row)).toEqual(row);
      const problem = parsePrompt(row.prompt[0].content);
      expect(problem.operations).toHaveLength(3);
      expect(row.reward_model.ground_truth).toBe(String(problemAnswer(problem)));
    }
  });

  test('ProcessBench sets: same problems and labels in every format, half with errors', () => {
    const sets = makeProcessBenchSets(5, 200, TRACE_FORMATS);
    expect(makeProcessBenchSets(5, 200, TRACE_FORMATS)).toEqual(sets);
    const [a, b1, b2] = TRACE_FORMATS.map((format) => sets.get(format)!);
    for (const set of [a, b1, b2]) {
      expect(set).toHaveLength(200);
      for (const row of set) expect(ProcessBenchRecordSchema.parse(row)).toEqual(row);
    }
    expect(b1.map(({ problem, label }) => ({ problem, label }))).toEqual(a.map(({ problem, label }) => ({ problem, label })));
    expect(b2.map(({ label }) => label)).toEqual(a.map(({ label }) => label));
    expect(a.filter((row) => row.label === -1)).toHaveLength(100);
    expect(a.every((row) => row.final_answer_correct === (row.label === -1))).toBe(true);
    expect(b2[1].trace_format).toBe('B2');
  });
});
