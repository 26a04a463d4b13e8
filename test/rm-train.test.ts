// Offline reward-model training on outcome-labelled rollouts: pairs from mixed prompts, reference log-probs, and each
// method (IPVRM, Implicit PRM, DPO-RM) learning to rank the right answer of a training pair above the wrong one;
// the rm train command.
import { jest } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { writeJsonl } from '../lib/data/index.js';
import { loadModel } from '../lib/model/index.js';
import { readRollouts } from '../lib/rollout/rollouts.js';
import { IPVRM_WEIGHTINGS, outcomePairs, referenceLogprobs, RM_METHODS, trainRewardModel } from '../lib/train/rm.js';
import { captureStdout } from './helpers/stdout.js';
import { syntheticRollouts } from './helpers/synthetic-rollouts.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');

test('pairs: one per mixed prompt, chosen right and rejected wrong; unmixed prompts give none', async () => {
  const rollouts = await syntheticRollouts(3);
  const allRight = rollouts.filter((r) => r.prompt_index === 2).map((r) => ({ ...r, score: 1 }));
  const pairs = outcomePairs([...rollouts.filter((r) => r.prompt_index !== 2), ...allRight], 1);
  expect(pairs).toHaveLength(2);
  for (const pair of pairs) {
    expect([pair.chosen.label, pair.rejected.label]).toEqual([1, 0]);
    expect(pair.chosen.tokens.slice(0, pair.chosen.lossStart)).toEqual(pair.rejected.tokens.slice(0, pair.rejected.lossStart));
  }
});

test('best-worst pairs: the highest- and lowest-scored response, the first among ties; no randomness', async () => {
  const rollouts = (await syntheticRollouts(2)).map((r) => ({ ...r, score: r.prompt_index === 1 ? [0.5, 0, 1, 0][r.sample_index] : r.score }));
  const pairs = outcomePairs(rollouts, 0, 'best-worst');
  expect(pairs).toHaveLength(2);
  const pick = (pair: (typeof pairs)[number]) =>
    [pair.chosen, pair.rejected].map((s) =>
      rollouts.find((r) => [...r.prompt_ids, ...r.response_ids].join() === s.tokens.join() && r.score === s.label)!,
    );
  // Prompt 0 scores [1, 0, 1, 0]: samples 0 and 1. Prompt 1 scores [0.5, 0, 1, 0]: samples 2 and 1.
  expect(pick(pairs[0]).map((r) => r.sample_index)).toEqual([0, 1]);
  expect(pick(pairs[1]).map((r) => [r.sample_index, r.score])).toEqual([
    [2, 1],
    [1, 0],
  ]);
  expect(outcomePairs(rollouts, 7, 'best-worst')).toEqual(pairs);
  expect(() => outcomePairs(rollouts, 0, 'top' as never)).toThrow(/random, best-worst/);
  // Random pairs split pass from fail: a graded score is refused, naming its rollout, not counted as a failure.
  expect(() => outcomePairs(rollouts, 0, 'random')).toThrow(/the rollout of prompt 1, sample 0 has score 0.5: random pairs need pass\/fail scores/);
  const outOfRange = rollouts.map((r) => (r.prompt_index === 0 && r.sample_index === 3 ? { ...r, score: 2 } : r));
  expect(() => outcomePairs(outOfRange, 0, 'best-worst')).toThrow(/prompt 0, sample 3 has score 2: best-worst pairs need scores in \[0, 1\]/);
});

test("IPVRM weightings: each trains, sequence-mean is the paper's uniform, and they differ from the token mean", async () => {
  const model = await loadModel(FIXTURE);
  const reference = await loadModel(FIXTURE);
  try {
    const pairs = outcomePairs(await syntheticRollouts(2));
    await referenceLogprobs(
      reference,
      pairs.flatMap((p) => [p.chosen, p.rejected]),
    );
    // A few steps first, so the log ratios differ between prefixes; then one step at lr ~0 (the model stays as it
    // is) gives the loss of one batch under each weighting.
    await trainRewardModel(model, pairs, { method: 'ipvrm', steps: 5, pairsPerStep: 2, lr: 3e-3 });
    const first: Record<string, number> = {};
    for (const weighting of IPVRM_WEIGHTINGS) {
      const [step] = await trainRewardModel(model, pairs, { method: 'ipvrm', steps: 1, pairsPerStep: 2, lr: 1e-30, weighting, margin: 1 });
      first[weighting] = step.loss;
    }
    expect(first['sequence-mean']).toBe(first.uniform);
    expect(new Set([first['token-mean'], first.uniform, first.early, first.late]).size).toBe(4);
    await expect(trainRewardModel(model, pairs, { method: 'dpo-rm', steps: 1, weighting: 'late' })).rejects.toThrow(/applies to ipvrm only/);
  } finally {
    model.dispose();
    reference.dispose();
  }
});

describe.each(RM_METHODS)('%s', (method) => {
  test('learns to rank the training pairs; the loss falls', async () => {
    const model = await loadModel(FIXTURE);
    const reference = await loadModel(FIXTURE);
    try {
      const pairs = outcomePairs(await syntheticRollouts(8));
      await referenceLogprobs(
        reference,
        pairs.flatMap((p) => [p.chosen, p.rejected]),
      );
      expect(pairs[0].chosen.refLogprobs).toHaveLength(pairs[0].chosen.tokens.length - 1);
      const history = await trainRewardModel(model, pairs, { method, steps: 40, pairsPerStep: 8, lr: 3e-3 });
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(mean(history.slice(-5).map((s) => s.loss))).toBeLessThan(0.8 * mean(history.slice(0, 3).map((s) => s.loss)));
      expect(mean(history.slice(-5).map((s) => s.pairAccuracy))).toBeGreaterThanOrEqual(0.9);
      expect(history.every((s) => Number.isFinite(s.loss))).toBe(true);
    } finally {
      model.dispose();
      reference.dispose();
    }
  });
});

test('bad input is refused', async () => {
  const model = await loadModel(FIXTURE);
  try {
    await expect(trainRewardModel(model, [], { method: 'ipvrm', steps: 1 })).rejects.toThrow(/no pairs/);
    const pairs = outcomePairs(await syntheticRollouts(1));
    await expect(trainRewardModel(model, pairs, { method: 'ipvrm', steps: 1 })).rejects.toThrow(/referenceLogprobs first/);
  } finally {
    model.dispose();
  }
});

test('prefix-rl rm train writes a reward model checkpoint; a malformed rollout line is named', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rm-'));
  const out = captureStdout();
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await writeJsonl(join(tmp, 'rollouts.jsonl'), await syntheticRollouts(4));
    const args = ['rm', 'train', '--method', 'ipvrm', '--rollouts', join(tmp, 'rollouts.jsonl'), '--model', FIXTURE];
    await main([...args, '--out', join(tmp, 'rm'), '--steps', '3', '--pairs-per-step', '2', '--weighting', 'late', '--pairs', 'best-worst']);
    expect(JSON.parse(out.join(''))).toMatchObject({ method: 'ipvrm', pairs: 4, steps: 3 });
    const rm = await loadModel(join(tmp, 'rm', 'model'));
    rm.dispose();
    await writeFile(join(tmp, 'bad.jsonl'), '{"prompt_index": 0}\n');
    await expect(main([...args.slice(0, 5), join(tmp, 'bad.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'x')])).rejects.toThrow(
      /bad.jsonl:1: needs prompt_index/,
    );
    const dpo = ['rm', 'train', '--method', 'dpo-rm', '--rollouts', join(tmp, 'rollouts.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'y')];
    await expect(main([...dpo, '--weighting', 'early'])).rejects.toThrow(/weighting applies to method ipvrm only/);
    await expect(main([...dpo, '--beta', '-1'])).rejects.toThrow(/beta.*(>0|positive|too small)/i);
    // A token id past the model's vocabulary is named at its line, before anything loads.
    const rows = await syntheticRollouts(4);
    await writeJsonl(
      join(tmp, 'oov.jsonl'),
      rows.map((r, i) => (i === 1 ? { ...r, prompt_ids: [...r.prompt_ids, 500] } : r)),
    );
    await expect(main([...args.slice(0, 5), join(tmp, 'oov.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'z')])).rejects.toThrow(
      /oov\.jsonl:2: prompt_ids\[\d+\] = 500 is outside the model's vocabulary \(0 ≤ id < 83\)/,
    );
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

test('a rollout whose token ids lie outside the model vocabulary is refused at its line', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rollouts-'));
  try {
    const rollouts = await syntheticRollouts(1);
    const bad = rollouts.map((r, i) => (i === 2 ? { ...r, response_ids: [r.response_ids[0], 9999] } : r));
    await writeJsonl(join(tmp, 'rollouts.jsonl'), bad);
    await expect(readRollouts(join(tmp, 'rollouts.jsonl'), { vocabSize: 83 })).rejects.toThrow(
      /rollouts\.jsonl:3: response_ids\[1\] = 9999 is outside the model's vocabulary \(0 ≤ id < 83\)/,
    );
    expect(await readRollouts(join(tmp, 'rollouts.jsonl'))).toHaveLength(bad.length); // no vocabulary, no check
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
