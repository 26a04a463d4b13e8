// The RL loop, end to end on a real checkpoint: every algorithm raises a reward the policy can learn in a few steps
// (the first response token's id is even), the old-policy pass matches the update pass (on-policy ratio 1), micro-
// batching changes memory, not results, the reward model trains online only when asked, and bad setups are refused.
import { jest } from '@jest/globals';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../lib/cli/main.js';
import { RL_PRESET_NAMES, resolveRlConfig, type RlConfigInput } from '../lib/config/rl.js';
import { writeJsonl } from '../lib/data/index.js';
import { initModel, loadModel, padBatch, type CausalLM, type LoraTarget } from '../lib/model/index.js';
import type { Rollout } from '../lib/rollout/rollouts.js';
import { keepGroups, trainRl } from '../lib/train/rl.js';
import { makeRlRecords } from '../lib/task/index.js';
import { tidy } from '../lib/tensor/index.js';
import { loadTokenizer, type Tokenizer } from '../lib/tokenizer/index.js';
import { captureStdout } from './helpers/stdout.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
const records = makeRlRecords(0, 8);
const evenFirstToken = (rollout: Omit<Rollout, 'score'>) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0);

let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizer(FIXTURE);
});

/** Exact P(first response token has an even id), averaged over the prompts: what the reward pays for. */
async function evenMass(model: CausalLM): Promise<number> {
  return tidy(async () => {
    const prompts = records.map((r) => tokenizer.encodeChat(r.prompt, { addGenerationPrompt: true }));
    const { inputIds, attentionMask } = padBatch(prompts, { side: 'left' });
    const logits = await model.forward(inputIds, attentionMask, { noGrad: true });
    const probs = logits
      .select(1, logits.shape[1] - 1)
      .softmax(-1)
      .toNested() as number[][];
    return probs.reduce((a, row) => a + row.reduce((s, p, id) => s + (id % 2 === 0 ? p : 0), 0), 0) / probs.length;
  });
}

function config(algorithm: string, extra: Partial<RlConfigInput> = {}) {
  return resolveRlConfig({
    algorithm,
    steps: 8,
    rollout: { promptsPerStep: 4, samples: 8, oversample: 1, maxNewTokens: 4 },
    actor: { lr: 1e-2, microBatch: 16 },
    ...extra,
    rewardModel: { lr: 1e-4, ...extra.rewardModel }, // the released 2e-6 would not move the tiny RM in 8 steps
  });
}

async function snapshot(model: CausalLM, name = 'model.layers.0.self_attn.q_proj.weight'): Promise<number[]> {
  return tidy(() => model.parameters().get(name)!.toNumbers());
}

async function logitsOf(model: CausalLM): Promise<number[]> {
  return tidy(async () => {
    const { inputIds, attentionMask } = padBatch([tokenizer.encodeChat(records[0].prompt, { addGenerationPrompt: true })]);
    return (await model.forward(inputIds, attentionMask, { noGrad: true })).toNumbers();
  });
}

const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe.each(RL_PRESET_NAMES)('%s', (algorithm) => {
  test('learns the reward; each update starts on-policy; the reward model trains online, the reference stays frozen', async () => {
    const { rewardModel: rm } = config(algorithm);
    const policy = await loadModel(FIXTURE);
    const rewardModel = rm.kind === 'none' ? undefined : await loadModel(FIXTURE);
    const reference = rewardModel && rm.reference === 'frozen' ? await loadModel(FIXTURE) : undefined;
    try {
      const before = await evenMass(policy);
      const rmBefore = rewardModel && (await snapshot(rewardModel));
      const refBefore = reference && (await snapshot(reference));
      const history = await trainRl({ policy, rewardModel, reference }, tokenizer, records, config(algorithm, { steps: 10 }), {
        reward: evenFirstToken,
      });
      expect(history).toHaveLength(10);
      expect(await evenMass(policy)).toBeGreaterThan(before + 0.3); // measured +0.38 (distrl-dpo) to +0.58 (prime)
      for (const step of history) {
        // One mini-batch per step: π_θ is π_old when the loss is taken, so every ratio is 1.
        expect(Math.abs(step.ppoKl)).toBeLessThan(1e-6);
        expect(step.pgClipfrac).toBe(0);
        expect(step.sequences).toBe(32);
        expect(Number.isFinite(step.loss) && Number.isFinite(step.gradNorm)).toBe(true);
      }
      // The RM's outcome accuracy is read wherever the estimator reads its rewards.
      for (const step of history) {
        if (!rewardModel) expect(step.rmAccuracy).toBeUndefined();
        else expect(step.rmAccuracy! >= 0 && step.rmAccuracy! <= 1).toBe(true);
        // What was not measured is absent: the RM's phases without one, the evaluation (none is asked for here).
        expect(step.timing.rmScore === undefined).toBe(!rewardModel);
        expect(step.timing.rmUpdate === undefined).toBe(!rewardModel || rm.update === 'none');
        expect(step.timing.eval).toBeUndefined();
      }
      if (rewardModel) {
        // DPO-RM learns only from pairs: a step whose groups all have one outcome (none mixed) skips its update.
        expect(history.every((s) => Number.isFinite(s.rmLoss) || (rm.kind === 'dpo-rm' && s.mixedFraction === 0))).toBe(true);
        expect(maxAbsDiff(await snapshot(rewardModel), rmBefore!)).toBeGreaterThan(1e-4);
      } else {
        expect(history.every((s) => s.rmLoss === undefined)).toBe(true);
      }
      if (reference) expect(await snapshot(reference)).toEqual(refBefore);
    } finally {
      for (const model of [policy, rewardModel, reference]) model?.dispose();
    }
  });
});

/** Mean entropy (nats) of the first response token's distribution over the prompts. */
async function firstTokenEntropy(model: CausalLM): Promise<number> {
  return tidy(async () => {
    const prompts = records.map((r) => tokenizer.encodeChat(r.prompt, { addGenerationPrompt: true }));
    const { inputIds, attentionMask } = padBatch(prompts, { side: 'left' });
    const logits = await model.forward(inputIds, attentionMask, { noGrad: true });
    const logp = logits.select(1, logits.shape[1] - 1).logSoftmax(-1);
    return logp.exp().mul(logp).sum(-1).neg().mean().item();
  });
}

test('entropy bonus: loss = pg − coeff·entropy, and with nothing to learn from the reward it raises the entropy', async () => {
  const policy = await loadModel(FIXTURE);
  try {
    const before = await firstTokenEntropy(policy);
    const cfg = config('grpo', { steps: 3, actor: { lr: 1e-2, microBatch: 32, entropyCoeff: 0.5 } });
    const history = await trainRl({ policy }, tokenizer, records, cfg, { reward: () => 1 }); // every advantage is 0
    for (const step of history) {
      expect(step.entropy).toBeGreaterThan(0);
      expect(step.loss).toBeCloseTo(step.pgLoss - 0.5 * step.entropy, 6);
    }
    expect(await firstTokenEntropy(policy)).toBeGreaterThan(before + 0.05); // measured 4.16 → 4.35
  } finally {
    policy.dispose();
  }
});

test('micro-batches accumulate to the whole batch: the same update at 8 and 32 sequences per pass', async () => {
  // As in the reference, a micro-batch's loss is its own token mean over the number of micro-batches: that equals the
  // whole batch's token mean when micro-batches hold equal token counts, as one-token responses do.
  const after: number[][] = [];
  for (const microBatch of [8, 32]) {
    const policy = await loadModel(FIXTURE);
    const rewardModel = await loadModel(FIXTURE);
    try {
      const cfg = config('distrl', {
        steps: 1,
        rollout: { promptsPerStep: 4, samples: 8, oversample: 1, maxNewTokens: 1 },
        actor: { lr: 1e-2, microBatch },
      });
      await trainRl({ policy, rewardModel }, tokenizer, records, cfg, { reward: evenFirstToken });
      after.push(await snapshot(policy));
    } finally {
      policy.dispose();
      rewardModel.dispose();
    }
  }
  expect(maxAbsDiff(after[0], after[1])).toBeLessThan(1e-5);
});

test('a frozen reference for the IPVRM: the reward model trains against it and the TD is read against it', async () => {
  const policy = await loadModel(FIXTURE);
  const rewardModel = await loadModel(FIXTURE);
  const reference = await loadModel(FIXTURE);
  try {
    const refBefore = await snapshot(reference);
    const cfg = config('distrl', { steps: 2, rewardModel: { reference: 'frozen' } });
    const history = await trainRl({ policy, rewardModel, reference }, tokenizer, records, cfg, { reward: evenFirstToken });
    expect(history.every((s) => Number.isFinite(s.rmLoss) && Number.isFinite(s.loss))).toBe(true);
    expect(await snapshot(reference)).toEqual(refBefore);
  } finally {
    for (const model of [policy, rewardModel, reference]) model.dispose();
  }
});

test('later mini-batches are off-policy; the paper conventions run; update none leaves the reward model as it was', async () => {
  const policy = await loadModel(FIXTURE);
  const rewardModel = await loadModel(FIXTURE);
  try {
    const rmBefore = await snapshot(rewardModel);
    const cfg = config('distrl', {
      steps: 2,
      conventions: 'paper',
      actor: { lr: 1e-2, miniBatches: 2, microBatch: 8 },
      rewardModel: { update: 'none' },
    });
    const history = await trainRl({ policy, rewardModel }, tokenizer, records, cfg, { reward: evenFirstToken });
    expect(history.some((s) => Math.abs(s.ppoKl) > 1e-6)).toBe(true);
    expect(history.every((s) => s.rmLoss === undefined && Number.isFinite(s.loss))).toBe(true);
    expect(await snapshot(rewardModel)).toEqual(rmBefore);
  } finally {
    policy.dispose();
    rewardModel.dispose();
  }
});

test('LoRA: only the new adapter trains and learns the reward; held-out accuracy on the evaluation steps', async () => {
  const policy = await loadModel(FIXTURE);
  try {
    const base = await snapshot(policy);
    const before = await evenMass(policy);
    const cfg = config('grpo', { actor: { lr: 3e-2, microBatch: 16, lora: { rank: 4, alpha: 8 } }, eval: { every: 3, samples: 2, maxNewTokens: 2 } });
    const history = await trainRl({ policy }, tokenizer, records, cfg, { reward: evenFirstToken, evalRecords: records.slice(0, 3) });
    expect(policy.lora).toMatchObject({ rank: 4, alpha: 8 });
    expect(await snapshot(policy)).toEqual(base);
    expect(await evenMass(policy)).toBeGreaterThan(before + 0.2);
    expect(history.map((s) => s.testAccuracy !== undefined)).toEqual([false, false, true, false, false, true, false, true]);
    expect(history.every((s) => s.testAccuracy === undefined || (s.testAccuracy >= 0 && s.testAccuracy <= 1))).toBe(true);
    await expect(trainRl({ policy }, tokenizer, records, cfg)).rejects.toThrow(/already has one/);
  } finally {
    policy.dispose();
  }
});

test('kept groups: mixed and untruncated first, in order; uniform ones only to fill up', () => {
  const group = (prompt: number, scores: number[], length = 3): Rollout[] =>
    scores.map((score, sample) => ({ prompt_index: prompt, sample_index: sample, response_ids: Array(length).fill(5), score }) as Rollout);
  const groups = [group(0, [1, 1]), group(1, [0, 1]), group(2, [1, 0], 9), group(3, [0, 1]), group(4, [0, 0])];
  const kept = (count: number) => keepGroups(groups, count, 10).map((g) => g[0].prompt_index);
  expect(kept(2)).toEqual([1, 3]);
  expect(kept(4)).toEqual([1, 3, 0, 2]);
  // A mean on a bound passes, as in the reference's filter (it fails only means above the upper or below the lower):
  // with PRIME's [0.2, 0.8] and 5 samples, 1 or 4 correct of 5 are kept.
  const fifths = [group(0, [1, 1, 1, 1, 1]), group(1, [1, 0, 0, 0, 0]), group(2, [1, 1, 1, 1, 0]), group(3, [1, 1, 0, 0, 0])];
  expect(keepGroups(fifths, 3, 10, [0.2, 0.8]).map((g) => g[0].prompt_index)).toEqual([1, 2, 3]);
});

test('bad setups are refused with the reason', async () => {
  const policy = await loadModel(FIXTURE);
  try {
    await expect(trainRl({ policy }, tokenizer, records, config('distrl'))).rejects.toThrow(/needs a reward model/);
    await expect(trainRl({ policy, rewardModel: policy }, tokenizer, records, config('distrl'))).rejects.toThrow(/separate from the policy/);
    const rewardModel = await loadModel(FIXTURE);
    try {
      await expect(trainRl({ policy, rewardModel }, tokenizer, records, config('prime'))).rejects.toThrow(/reference is frozen/);
    } finally {
      rewardModel.dispose();
    }
    await expect(trainRl({ policy }, tokenizer, [], config('grpo'))).rejects.toThrow(/at least one prompt/);
    const nan = trainRl({ policy }, tokenizer, records, config('grpo', { steps: 1 }), { reward: () => Number.NaN });
    await expect(nan).rejects.toThrow(/not a finite number/);
    const rm = await loadModel(FIXTURE);
    try {
      const signed = trainRl({ policy, rewardModel: rm }, tokenizer, records, config('distrl', { steps: 1 }), { reward: () => -1 });
      await expect(signed).rejects.toThrow(/rewards must be in \[0, 1\]/);
    } finally {
      rm.dispose();
    }
    // A failed run leaves the policy usable for inference.
    expect([...policy.parameters().values()].every((p) => !p.requiresGrad)).toBe(true);
    expect(await evenMass(policy)).toBeGreaterThan(0);
  } finally {
    policy.dispose();
  }
});

test('prefix-rl rl train: config + --set overrides, checkpoints and metrics written', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rl-'));
  const out = captureStdout();
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await writeJsonl(join(tmp, 'rl.jsonl'), records);
    await writeFile(join(tmp, 'cfg.yaml'), 'algorithm: grpo-ipvrm\nsteps: 5\nrollout:\n  promptsPerStep: 2\n  samples: 2\n  maxNewTokens: 3\n');
    const run = join(tmp, 'run');
    // π_φ from other weights than the policy: its TD (and so the advantages) are not 0 although every outcome is.
    const other = await initModel(JSON.parse(await readFile(join(FIXTURE, 'config.json'), 'utf8')), { seed: 9, tokenizerFrom: FIXTURE });
    await other.save(join(tmp, 'rm0'));
    other.dispose();
    await main([
      ...['rl', 'train', '--config', join(tmp, 'cfg.yaml'), '--model', FIXTURE, '--reward-model', join(tmp, 'rm0'), '--data', join(tmp, 'rl.jsonl')],
      ...['--eval-data', join(tmp, 'rl.jsonl')],
      ...['--out', run, '--steps', '2', '--set', 'actor.lr=1e-3', '--set', 'rewardModel.margin=0', '--set', 'actor.lora={rank: 2, alpha: 4}'],
      ...['--set', 'eval.samples=1', '--set', 'eval.maxNewTokens=2'],
    ]);
    const summary = JSON.parse(out.join(''));
    expect(summary).toMatchObject({ algorithm: 'grpo-ipvrm', steps: 2 });
    expect(typeof summary.initialTestAccuracy === 'number' && typeof summary.testAccuracy === 'number').toBe(true);
    const metrics = (await readFile(join(run, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    // Step 0: held-out accuracy before training; then one row per step, with verl's names.
    expect(metrics.map((m) => m.step)).toEqual([0, 1, 2]);
    expect(Object.keys(metrics[0])).toEqual(['step', 'val/accuracy']);
    expect(metrics[0]['val/accuracy']).toBe(summary.initialTestAccuracy);
    expect(metrics[2]['val/accuracy']).toBe(summary.testAccuracy);
    expect(metrics[1]).toHaveProperty('actor/pg_loss');
    expect(metrics[1]).not.toHaveProperty('val/accuracy');
    const saved = JSON.parse(await readFile(join(run, 'run.json'), 'utf8'));
    expect(saved).toMatchObject({ stage: 'rl', config: { steps: 2, actor: { lr: 1e-3 }, rewardModel: { margin: 0, beta: 10, reference: 'old' } } });
    // The LoRA policy is saved as its adapter and merged: the adapter on the start model gives the merged model's logits.
    const merged = await loadModel(join(run, 'policy'));
    const adapted = await loadModel(FIXTURE);
    try {
      await adapted.loadAdapter(join(run, 'policy-lora'));
      expect(maxAbsDiff(await logitsOf(merged), await logitsOf(adapted))).toBeLessThan(1e-4);
      expect(maxAbsDiff(await snapshot(merged), await snapshot(adapted))).toBeGreaterThan(0);
    } finally {
      merged.dispose();
      adapted.dispose();
    }
    (await loadModel(join(run, 'reward-model'))).dispose();
    await writeFile(join(tmp, 'bad.yaml'), 'algorithm: distrl\nactor:\n  lr: -1\n  lrr: 2\n');
    await expect(
      main(['rl', 'train', '--config', join(tmp, 'bad.yaml'), '--model', FIXTURE, '--data', join(tmp, 'rl.jsonl'), '--out', run]),
    ).rejects.toThrow(/bad.yaml: invalid RL config: .*actor.*lrr|actor.lr/);
  } finally {
    jest.restoreAllMocks();
    await rm(tmp, { recursive: true, force: true });
  }
});

describe('the fused LM head gives the RL step of the logits path', () => {
  test.each([
    // Dist-PPO with the online IPVRM, π_ref frozen, with the entropy bonus; Tok-PPO with the online DPO-RM; PRIME's
    // online Implicit PRM with token rewards.
    ['distrl-ipvrm', { rewardModel: { reference: 'frozen' }, actor: { lr: 1e-2, microBatch: 16, entropyCoeff: 0.01 } }],
    ['grpo-dpo', {}],
    ['prime', { rollout: { promptsPerStep: 4, samples: 8, oversample: 1, maxNewTokens: 4, accuracyBounds: [0, 1] } }],
  ] as [string, Partial<RlConfigInput>][])('%s', async (algorithm, extra) => {
    const runs = [];
    for (const fusedHead of [true, false]) {
      const [policy, rewardModel, reference] = [await loadModel(FIXTURE), await loadModel(FIXTURE), await loadModel(FIXTURE)];
      try {
        const cfg = config(algorithm, { steps: 1, fusedHead, ...extra });
        const [step] = await trainRl({ policy, rewardModel, reference }, tokenizer, records, cfg, { reward: evenFirstToken });
        runs.push({ step, policy: await snapshot(policy), rewardModel: await snapshot(rewardModel) });
      } finally {
        for (const model of [policy, rewardModel, reference]) model.dispose();
      }
    }
    const [fused, logits] = runs;
    for (const key of ['loss', 'pgLoss', 'topkPgLoss', 'entropy', 'rmLoss', 'rmScore', 'candidateSize', 'candidateCoverage', 'gradNorm'] as const) {
      const [a, b] = [fused.step[key], logits.step[key]];
      if (b === undefined) continue;
      expect(Math.abs((a as number) - (b as number))).toBeLessThan(1e-4 * Math.max(1, Math.abs(b as number)));
    }
    expect(Math.abs(fused.step.ppoKl)).toBeLessThan(1e-7); // on-policy: the fused π_old and π_θ passes agree
    expect(maxAbsDiff(fused.policy, logits.policy)).toBeLessThan(1e-5);
    expect(maxAbsDiff(fused.rewardModel, logits.rewardModel)).toBeLessThan(1e-5);
    // Both models trained, so the comparison means something.
    const initial = await loadModel(FIXTURE);
    const before = await snapshot(initial);
    initial.dispose();
    expect(fused.step.rmLoss).toBeDefined();
    expect(maxAbsDiff(fused.policy, before)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(fused.rewardModel, before)).toBeGreaterThan(1e-6);
  });

  test("a LoRA actor with an adapter on the head too (its low-rank term through the fused head): the logits path's steps", async () => {
    const runs = [];
    for (const fusedHead of [true, false]) {
      const [policy, rewardModel, reference] = [await loadModel(FIXTURE), await loadModel(FIXTURE), await loadModel(FIXTURE)];
      try {
        const lora = { rank: 2, alpha: 4, targetModules: ['q_proj', 'lm_head'] as LoraTarget[] };
        const cfg = config('distrl-ipvrm', { steps: 2, fusedHead, actor: { lr: 3e-2, microBatch: 16, lora } });
        const history = await trainRl({ policy, rewardModel, reference }, tokenizer, records, cfg, { reward: evenFirstToken });
        const headB = await tidy(() => policy.loraParameters().get('base_model.model.lm_head.lora_B.weight')!.toNumbers());
        runs.push({ history, logits: await logitsOf(policy), headB });
      } finally {
        for (const model of [policy, rewardModel, reference]) model.dispose();
      }
    }
    const [fused, logits] = runs;
    fused.history.forEach((step, i) => {
      for (const key of ['loss', 'pgLoss', 'topkPgLoss', 'gradNorm'] as const) {
        expect(Math.abs(step[key]! - logits.history[i][key]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(logits.history[i][key]!)));
      }
    });
    expect(maxAbsDiff(fused.logits, logits.logits)).toBeLessThan(1e-5);
    // The head's adapter trained (step 2 runs it with B ≠ 0), so the comparison covers its forward and backward.
    expect(Math.max(...fused.headB.map(Math.abs))).toBeGreaterThan(1e-4);
  });
});
