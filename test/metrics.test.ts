// The metric catalogue (lib/run/metrics.ts) is the truth: every row a stage logs uses only its names, every name is
// logged by some stage, and docs/METRICS.md documents each one.
import { readFileSync } from 'node:fs';
import { METRICS, rlMetrics, rmMetrics, sftMetrics } from '../lib/run/metrics.js';
import type { RlStep } from '../lib/train/rl.js';

const rlStep: RlStep = {
  step: 4,
  accuracy: 0.5,
  mixedFraction: 0.25,
  sequences: 8,
  meanResponseLength: 10,
  maxResponseLength: 12,
  responseClipRatio: 0,
  rmLoss: 0.6,
  rmAccuracy: 0.75,
  rmScore: 0.01,
  advantages: { mean: 0, max: 1, min: -1 },
  candidateSize: 2.5,
  candidateCoverage: 0.9,
  rolloutLogprobDiff: { mean: 1e-7, max: 1e-6 },
  loss: 0.1,
  pgLoss: 0.08,
  topkPgLoss: 0.2,
  entropy: 1.2,
  pgClipfrac: 0.01,
  topkPgClipfrac: 0.02,
  ppoKl: 0.001,
  gradNorm: 0.5,
  lr: 1e-5,
  testAccuracy: 0.6,
  tokens: 400,
  timing: { gen: 1, verify: 0.1, oldLogProb: 0.2, rmUpdate: 0.3, rmScore: 0.1, adv: 0.01, updateActor: 0.5, eval: 0.4, step: 2.6 },
  seconds: 10,
};

const rows = {
  sft: sftMetrics({ step: 4, loss: 1, lr: 1e-3, gradNorm: 0.5, tokens: 100, seconds: 3 }, 0.5),
  rm: rmMetrics({ step: 4, loss: 0.7, pairAccuracy: 0.5, lr: 1e-4, gradNorm: 0.3, tokens: 200, seconds: 3 }, 0.5),
  rl: rlMetrics(rlStep),
};

test('each stage logs only catalogued names of its stage, with step = steps done', () => {
  for (const [stage, row] of Object.entries(rows)) {
    expect(row.step).toBe(5);
    for (const name of Object.keys(row).filter((key) => key !== 'step')) {
      const doc = METRICS.find((m) => m.name === name);
      expect({ name, stage, documented: doc?.stages.includes(stage as 'sft') }).toEqual({ name, stage, documented: true });
    }
  }
  expect(rows.rl['critic/score/mean']).toBe(0.5);
  expect(rows.rl['perf/throughput']).toBeCloseTo(400 / 2.6, 12);
});

test('every catalogued name is logged by a stage it lists, and is on docs/METRICS.md', () => {
  const docs = readFileSync('docs/METRICS.md', 'utf8');
  for (const metric of METRICS) {
    for (const stage of metric.stages)
      expect({ name: metric.name, stage, logged: metric.name in rows[stage] }).toEqual({ name: metric.name, stage, logged: true });
    expect(docs).toContain(`| \`${metric.name}\` |`);
  }
  expect(new Set(METRICS.map((m) => m.name)).size).toBe(METRICS.length);
});

test('absent measurements are left out of the row, not logged as null', () => {
  const row = rlMetrics({ ...rlStep, rmLoss: undefined, rmAccuracy: undefined, rmScore: undefined, testAccuracy: undefined });
  expect(Object.keys(row).filter((key) => key.startsWith('reward_model/') || key.startsWith('val/'))).toEqual([]);
});
