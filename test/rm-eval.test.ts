// Reward-model evaluation: step boundaries found from the tokenizer, step verification and Best-of-N computed from
// batched log-probs equal to the same metrics from one-sequence-at-a-time log-probs, the threshold-free AUC, and
// the rm eval command.
import { jest } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { writeJsonl } from '../lib/data/index.js';
import { evaluateProcessBench, linspace, searchThreshold, stepAuc } from '../lib/eval/index.js';
import { initModel, loadModel, type CausalLM } from '../lib/model/index.js';
import type { Rollout } from '../lib/rollout/rollouts.js';
import { analyzeTd, pearson, rocAuc } from '../lib/eval/td-analysis.js';
import { averageProcessBench, evaluateBestOfN, evaluateStepVerification, responseStepEnds, stepSequences } from '../lib/eval/reward-model.js';
import { makeProcessBenchSets, makeRlRecords } from '../lib/task/index.js';
import { Tensor, tidy } from '../lib/tensor/index.js';
import { loadTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { captureStdout } from './helpers/stdout.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
let tokenizer: Tokenizer;
let reference: CausalLM;
let rewardModel: CausalLM;

beforeAll(async () => {
  tokenizer = await loadTokenizer(FIXTURE);
  reference = await loadModel(FIXTURE);
  // Another model over the same vocabulary: random weights, so the log ratios are far from 0.
  const config = JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8'));
  rewardModel = await initModel({ ...config, initializer_range: 0.5 }, { seed: 5 });
});
afterAll(() => {
  reference?.dispose();
  rewardModel?.dispose();
});

/** log-probs of one unpadded sequence: the ground truth the batched path must equal. */
async function alone(model: CausalLM, tokens: number[]): Promise<number[]> {
  return tidy(async () => (await model.tokenLogprobs(Tensor.from(BigInt64Array.from(tokens, BigInt), [1, tokens.length]))).toNumbers());
}

describe('stepSequences', () => {
  test('task rows: each step ends on its own last character; the last step owns EOS', () => {
    const records = makeProcessBenchSets(1, 4, ['A', 'B2']);
    for (const format of ['A', 'B2'] as const) {
      for (const [i, s] of stepSequences(tokenizer, records.get(format)!).entries()) {
        const record = records.get(format)![i];
        expect(s.label).toBe(record.label);
        expect(s.tokens.at(-1)).toBe(tokenizer.eosTokenId);
        expect(s.stepEnds.at(-1)).toBe(s.tokens.length - 1);
        const upTo = (k: number) => tokenizer.decode(s.tokens.slice(s.promptLength, s.stepEnds[k] + 1), { skipSpecialTokens: true });
        for (let k = 0; k < record.steps.length - 1; k++) expect(upTo(k).trimEnd()).toMatch(new RegExp(`${escape(record.steps[k])}$`));
        expect(upTo(record.steps.length - 1)).toMatch(new RegExp(`${escape(record.steps.at(-1)!)}$`));
      }
    }
  });

  test('other rows are laid out as the ProcessBench reference script does, its step ends included', () => {
    const steps = ['One plus one.', 'It is 2.', 'So 2.'];
    const [s] = stepSequences(tokenizer, [{ id: 'x', problem: 'What is 1+1?', steps, label: -1 }]);
    // The whole conversation under the chat template, stripped.
    const whole = tokenizer.applyChatTemplate([
      { role: 'user', content: 'What is 1+1?' },
      { role: 'assistant', content: 'Step 1: One plus one.\n\nStep 2: It is 2.\n\nStep 3: So 2.' },
    ]);
    expect(s.tokens).toEqual(tokenizer.encode(whole.trim()));
    expect(tokenizer.decode(s.tokens.slice(s.promptLength), { skipSpecialTokens: true })).toBe(
      'Step 1: One plus one.\n\nStep 2: It is 2.\n\nStep 3: So 2.',
    );
    // process_eval.py's step_last_tokens[k] = len(tokenize(conv_k)) − 2 over log-prob positions (shifted by one), conv_k
    // the first k steps' conversation stripped, plus "\n\n" before the last: an intermediate step ends one token into
    // the next (where conv_k's end-of-turn token stands), the last at the end-of-turn token.
    const conv = (k: number) =>
      tokenizer
        .applyChatTemplate([
          { role: 'user', content: 'What is 1+1?' },
          {
            role: 'assistant',
            content: steps
              .slice(0, k)
              .map((step, i) => `Step ${i + 1}: ${step}`)
              .join('\n\n'),
          },
        ])
        .trim() + (k > 0 && k < steps.length ? '\n\n' : '');
    expect(s.promptLength - 1).toBe(tokenizer.encode(conv(0)).length - 2);
    expect(s.stepEnds.map((end) => end - 1)).toEqual([1, 2, 3].map((k) => tokenizer.encode(conv(k)).length - 2));
    expect(tokenizer.decode(s.tokens.slice(s.promptLength, s.stepEnds[0] + 1))).toBe('Step 1: One plus one.\n\nS');
    expect(s.stepEnds[2]).toBe(s.tokens.length - 1);
  });
});

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('samples of one kind have no oracle threshold on either grid (F1 0), as in the reference', () => {
  const scores = [
    [0.9, 0.2],
    [0.8, 0.7],
  ];
  for (const labels of [
    [-1, -1],
    [1, 0],
  ]) {
    for (const [grid, start] of [
      [linspace(-1, 1, 11), 'none'],
      [linspace(0, 1, 11), 'zero'],
    ] as const) {
      expect(searchThreshold(labels, scores, grid, start)).toEqual({ threshold: undefined, f1: 0, predictions: undefined });
    }
  }
  // Both kinds: the IPVRM grid takes its first point at the least.
  expect(searchThreshold([-1, 1], scores, linspace(-1, 1, 11), 'none').threshold).toBeDefined();
});

test('NaN step scores are refused, not looped on; so is a coefficient that is not a positive finite number', () => {
  expect(() =>
    stepAuc(
      [1, -1],
      [
        [0.1, Number.NaN],
        [0.2, 0.3],
      ],
    ),
  ).toThrow(/step scores hold NaN/);
  const items = [{ label: -1, rawReward: [0, 1, 2], firstBoundary: 0, stepEnds: [1, 2] }];
  for (const coef of [0, -0.001, Number.NaN, Infinity])
    expect(() => evaluateProcessBench(items, { coef })).toThrow(/coef must be a positive finite number/);
});

test('step AUC: separation, reversal, ties, and steps after the first error left out', () => {
  expect(
    stepAuc(
      [-1, 1],
      [
        [0.9, 0.8],
        [0.7, 0.1, 0.95],
      ],
    ),
  ).toBe(1);
  expect(stepAuc([0], [[0.9, 0.1]])).toBeNaN();
  expect(stepAuc([-1, 0], [[0.2], [0.9]])).toBe(0);
  expect(stepAuc([-1, 0], [[0.5, 0.5], [0.5]])).toBe(0.5);
  expect(stepAuc([-1, -1], [[0.5], [0.6]])).toBeNaN();
  // 3 right steps (0.2, 0.6, 0.9) vs 1 wrong (0.6): wins 1 + tie 0.5 of 3.
  expect(
    stepAuc(
      [-1, 1],
      [
        [0.2, 0.9],
        [0.6, 0.6],
      ],
    ),
  ).toBeCloseTo(1.5 / 3, 12);
});

test('step AUC ranks by the step logits: the same at any coefficient, even where the sigmoid saturates', () => {
  const items = [
    { label: -1, rawReward: [0, -300, -200, -400], firstBoundary: 1, stepEnds: [2, 3] },
    { label: 1, rawReward: [0, -100, -500, -450], firstBoundary: 1, stepEnds: [1, 2, 3] },
  ];
  const [small, large] = [1e-3, 10].map((coef) => evaluateProcessBench(items, { coef }).modes);
  for (const mode of ['sum', 'sum_diff'] as const) expect(large[mode].auc).toBe(small[mode].auc);
  // right steps −500, −400, −100 (×coef) against the first wrong step −500: 2 wins and a tie of 3.
  expect(small.sum_diff.auc).toBeCloseTo(2.5 / 3, 12);
  // At coef 10 every sigmoid score is 0: ranking those would make every step a tie.
  expect(large.sum_diff.scores.flat().every((score) => score === 0)).toBe(true);
});

test('step verification from batched log-probs equals the metrics from one sequence at a time', async () => {
  const records = makeProcessBenchSets(2, 10, ['A']).get('A')!;
  const sequences = stepSequences(tokenizer, records);
  const report = await evaluateStepVerification(rewardModel, reference, sequences, { coef: 1, batchSize: 3 });
  const items = await Promise.all(
    sequences.map(async (s) => {
      const [p, r] = [await alone(rewardModel, s.tokens), await alone(reference, s.tokens)];
      return { label: s.label, rawReward: p.map((v, j) => v - r[j]), firstBoundary: s.promptLength - 1, stepEnds: s.stepEnds.map((e) => e - 1) };
    }),
  );
  const expected = evaluateProcessBench(items, { coef: 1 }).modes;
  for (const mode of ['sum', 'sum_diff', 'mean', 'mean_diff'] as const) {
    expect(report.rewardModel[mode].auc).toBeCloseTo(expected[mode].auc, 5);
    expect(report.rewardModel[mode].f1).toBeCloseTo(expected[mode].best.f1, 5);
    expect(report.rewardModel[mode].f1AtHalf).toBeCloseTo(expected[mode].atHalf.f1, 5);
  }
  expect(report.items).toBe(10);
  for (const mode of ['sum', 'sum_diff', 'mean', 'mean_diff'] as const) {
    expect(report.rewardModel[mode].implicitPrmF1).toBeCloseTo(expected[mode].implicitPrmBest.f1, 5);
  }
  // Table 2's average over subsets.
  const other = await evaluateStepVerification(rewardModel, reference, sequences.slice(0, 4), { coef: 1 });
  const average = averageProcessBench([report, other]);
  expect(average.subsets).toBe(2);
  expect(average.rewardModel.sum_diff.f1).toBeCloseTo((report.rewardModel.sum_diff.f1 + other.rewardModel.sum_diff.f1) / 2, 12);
  expect(average.referenceLikelihood.sum.auc).toBeCloseTo((report.referenceLikelihood.sum.auc + other.referenceLikelihood.sum.auc) / 2, 12);
  expect(() => averageProcessBench([])).toThrow(/at least one subset/);
  // π_φ = π_ref: every log ratio is 0, every step ties, so no step is told from another.
  expect((await evaluateStepVerification(reference, reference, sequences)).rewardModel.sum_diff.auc).toBe(0.5);
  await expect(evaluateStepVerification(reference, reference, [])).rejects.toThrow(/at least one/);
});

function rolloutsFor(prompts: number, perPrompt: number, scores: number[]): Rollout[] {
  const records = makeRlRecords(4, prompts);
  return records.flatMap((record, p) => {
    const prompt_ids = tokenizer.encodeChat(record.prompt, { addGenerationPrompt: true });
    return Array.from({ length: perPrompt }, (_, i): Rollout => {
      const response = `Step 1: ${i + p}+1=${i + p + 1}\nAnswer: \\boxed{${i}}`;
      return {
        prompt_index: p,
        sample_index: i,
        data_source: 'prefix-rl/arith',
        prompt_ids,
        response_ids: [...tokenizer.encode(response, { addSpecialTokens: false }), tokenizer.eosTokenId!],
        response,
        logprobs: [],
        finish_reason: 'eos',
        ground_truth: '',
        score: scores[(p * perPrompt + i) % scores.length],
      };
    });
  });
}

test('Best-of-N picks the best-scored rollout of the first N; random is avg@N and oracle pass@N', async () => {
  const rollouts = rolloutsFor(3, 4, [0, 1, 1, 0, 0, 0, 1]);
  const report = await evaluateBestOfN(rewardModel, reference, tokenizer, rollouts, [1, 2, 4], { batchSize: 5 });
  expect(report.prompts).toBe(3);
  const scores = await Promise.all(
    rollouts.map(async (r) => {
      const tokens = [...r.prompt_ids, ...r.response_ids];
      const [p, q] = [await alone(rewardModel, tokens), await alone(reference, tokens)];
      const from = r.prompt_ids.length - 1;
      return p.slice(from).reduce((a, v, j) => a + v - q[from + j], 0) / r.response_ids.length;
    }),
  );
  // The step-wise min: the least cumulative coef·log ratio at a step end ('\n' ends a step of the task's format).
  const minScores = await Promise.all(
    rollouts.map(async (r) => {
      const tokens = [...r.prompt_ids, ...r.response_ids];
      const [p, q] = [await alone(rewardModel, tokens), await alone(reference, tokens)];
      const from = r.prompt_ids.length - 1;
      const lr = p.slice(from).map((v, j) => v - q[from + j]);
      const ends = [r.response.indexOf('\n'), r.response_ids.length - 1]; // one character per token
      return Math.min(...ends.map((end) => lr.slice(0, end + 1).reduce((a, v) => a + 0.001 * v, 0)));
    }),
  );
  expect(responseStepEnds(tokenizer, rollouts[0])).toEqual([rollouts[0].response.indexOf('\n'), rollouts[0].response_ids.length - 1]);
  for (const { n, rewardModel: picked, rewardModelMin, random, oracle } of report.byN) {
    let byMin = 0;
    for (let p = 0; p < 3; p++) {
      const s = minScores.slice(p * 4, p * 4 + n);
      byMin += rollouts[p * 4 + s.indexOf(Math.max(...s))].score;
    }
    expect(rewardModelMin).toBeCloseTo(byMin / 3, 12);
    let right = 0;
    let mean = 0;
    let any = 0;
    for (let p = 0; p < 3; p++) {
      const group = rollouts.slice(p * 4, p * 4 + n);
      const s = scores.slice(p * 4, p * 4 + n);
      right += group[s.indexOf(Math.max(...s))].score;
      mean += group.reduce((a, r) => a + r.score, 0) / n;
      any += group.some((r) => r.score === 1) ? 1 : 0;
    }
    expect(picked).toBeCloseTo(right / 3, 12);
    expect(random).toBeCloseTo(mean / 3, 12);
    expect(oracle).toBeCloseTo(any / 3, 12);
  }
  await expect(evaluateBestOfN(rewardModel, reference, tokenizer, rollouts, [8])).rejects.toThrow(/needs 8 rollouts per prompt/);
  await expect(evaluateBestOfN(rewardModel, reference, tokenizer, rollouts, [0])).rejects.toThrow(/positive integer/);
});

test('batched log-probs match one sequence at a time', async () => {
  const sequences = stepSequences(tokenizer, makeProcessBenchSets(3, 3, ['B1']).get('B1')!).map((s) => s.tokens);
  const batched = await reference.sequenceLogprobs(sequences, { batchSize: 2 });
  for (const [i, tokens] of sequences.entries()) {
    const single = await alone(reference, tokens);
    expect(batched[i]).toHaveLength(tokens.length - 1);
    batched[i].forEach((v, j) => expect(v).toBeCloseTo(single[j], 4));
  }
});

test('prefix-rl rm eval reports ProcessBench and Best-of-N beside the reference likelihood', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rmeval-'));
  const out = captureStdout();
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await writeJsonl(join(tmp, 'pb.jsonl'), makeProcessBenchSets(2, 6, ['A']).get('A')!);
    await writeJsonl(join(tmp, 'bon.jsonl'), rolloutsFor(2, 2, [1, 0]));
    await main([
      'rm',
      'eval',
      '--rm',
      FIXTURE,
      '--reference',
      FIXTURE,
      '--processbench',
      join(tmp, 'pb.jsonl'),
      '--bon-rollouts',
      join(tmp, 'bon.jsonl'),
      '--bon-n',
      '1',
      '2',
      '--coef',
      '10',
    ]);
    const report = JSON.parse(out.join(''));
    expect(report.coef).toBe(10);
    const pb = report.processBench[join(tmp, 'pb.jsonl')];
    expect(pb.items).toBe(6);
    expect(Object.keys(pb.rewardModel)).toEqual(['sum', 'sum_diff', 'mean', 'mean_diff']);
    expect(pb.referenceLikelihood.sum.auc).toBeGreaterThanOrEqual(0);
    expect(report.bestOfN.byN.map((r: { n: number }) => r.n)).toEqual([1, 2]);
    const table = stderr.mock.calls.map((c) => String(c[0])).join('');
    expect(table).toMatch(/sum_diff +\d\.\d{3} \/ \d\.\d{3}/);
    expect(table).toContain('Best-of-N accuracy (2 prompts)');
    expect(table).toMatch(/\| 2 \| \d\.\d{3} \| \d\.\d{3} \| \d\.\d{3} \|/);
    // The ProcessBench table: a column per subset and the average, both protocols, both scores.
    expect(table).toMatch(/\| rewardModel process-level \| [\d.]+ \([\d.]+\) \| [\d.]+ \([\d.]+\) \|/);
    expect(report.processBenchAverage.subsets).toBe(1);
    expect(report.processBenchAverage.rewardModel.sum_diff.f1).toBe(pb.rewardModel.sum_diff.f1);
    expect(pb.rewardModel.sum).toHaveProperty('implicitPrmF1');
    await expect(main(['rm', 'eval', '--rm', FIXTURE, '--reference', FIXTURE])).rejects.toThrow(/--processbench files, --bon-rollouts/);
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('rocAuc and pearson against hand values', () => {
  expect(rocAuc([0.9, 0.8, 0.3, 0.3], [1, 0, 1, 0])).toBeCloseTo((1 + 1 + 0 + 0.5) / 4, 12);
  expect(rocAuc([1, 2], [1, 1])).toBeNaN();
  expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
  expect(pearson([1, 2, 3], [1, 0, 1])).toBeCloseTo(0, 12);
  expect(pearson([1, 1, 1], [0, 1, 0])).toBeNaN();
});

test('TD analysis: top-K branches at a random truncation point, TD and prefix value as the models give them', async () => {
  const records = makeRlRecords(6, 4);
  const report = await analyzeTd({ policy: reference, rewardModel }, tokenizer, records, { candidates: 3, maxNewTokens: 12, batchSize: 5 });
  expect(report.trajectories).toBe(4);
  expect(report.branches).toBe(12);
  for (const item of report.items.slice(0, 6)) {
    const prompt = tokenizer.encodeChat(records[item.prompt].prompt, { addGenerationPrompt: true });
    const tokens = [...prompt, ...item.branch];
    expect(item.branch).toHaveLength(item.t + 1);
    expect(item.branch.at(-1)).toBe(item.token);
    const [p, q] = [await alone(rewardModel, tokens), await alone(reference, tokens)];
    const ratios = p.slice(prompt.length - 1).map((v, j) => v - q[prompt.length - 1 + j]);
    expect(item.td).toBeCloseTo(10 * ratios.at(-1)!, 3);
    expect(item.prefixValue).toBeCloseTo(10 * ratios.reduce((a, v) => a + v, 0), 3);
    expect([0, 1]).toContain(item.outcome);
  }
  // Each point's branches are π_old's top-K: distinct tokens.
  expect(new Set(report.items.slice(0, 3).map((x) => x.token)).size).toBe(3);
  // π_φ = π_ref: every TD and value is 0, so nothing is told apart.
  const flat = await analyzeTd({ policy: reference, rewardModel: reference }, tokenizer, records, { candidates: 2, maxNewTokens: 8 });
  expect(flat.items.every((x) => x.td === 0 && x.prefixValue === 0)).toBe(true);
  expect(flat.pearsonTd).toBeNaN();
  await expect(analyzeTd({ policy: reference, rewardModel }, tokenizer, [])).rejects.toThrow(/at least one prompt/);
});

test('TD analysis: a branch on an EOS token is complete as it is; no completion is sampled past it', async () => {
  const records = makeRlRecords(6, 1);
  const eos = reference.config.eosTokenIds;
  const generate = jest.spyOn(reference, 'generate');
  try {
    // Every token a candidate: one branch ends the response.
    const report = await analyzeTd({ policy: reference, rewardModel }, tokenizer, records, {
      candidates: reference.config.vocabSize,
      maxNewTokens: 3,
    });
    expect(report.items.some((x) => eos.includes(x.token))).toBe(true);
    const continued = generate.mock.calls.slice(1).flatMap(([prompts]) => prompts); // the first call samples the trajectory
    expect(continued).toHaveLength(report.branches - report.items.filter((x) => eos.includes(x.token)).length);
    expect(continued.some((prompt) => eos.includes(prompt.at(-1)!))).toBe(false);
  } finally {
    generate.mockRestore();
  }
});

test('prefix-rl rm analyze-td prints the summary and writes the branches', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-td-'));
  const out = captureStdout();
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await writeJsonl(join(tmp, 'rl.jsonl'), makeRlRecords(7, 3));
    const args = [
      'rm',
      'analyze-td',
      '--model',
      FIXTURE,
      '--rm',
      FIXTURE,
      '--data',
      join(tmp, 'rl.jsonl'),
      '--candidates',
      '2',
      '--max-new-tokens',
      '6',
    ];
    await main([...args, '--out', join(tmp, 'branches.jsonl')]);
    expect(JSON.parse(out.join(''))).toMatchObject({ trajectories: 3, branches: 6, out: join(tmp, 'branches.jsonl') });
    expect((await readFile(join(tmp, 'branches.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(6);
    await expect(main([...args, '--out', join(tmp, 'rl.jsonl')])).rejects.toThrow(/overlaps --data/);
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});
