// Exact resume: a run killed with SIGKILL — at a random step, while a checkpoint is written, between a checkpoint's
// rename and its `latest` pointer — and resumed with --resume auto ends with the same weights, optimizer states and
// metrics, bit for bit, as the same run uninterrupted; for sft, rm train and rl train (DistRL with the online IPVRM).
// The runs are child processes of the compiled CLI (dist/, built by npm test's pretest).
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonl } from '../lib/data/index.js';
import { readRuns, planCharts } from '../lib/report/index.js';
import { isTimingMetric } from '../lib/run/metrics.js';
import { makeRlRecords, makeSftRecords } from '../lib/task/index.js';
import { syntheticRollouts } from './helpers/synthetic-rollouts.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
jest.setTimeout(180_000);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-resume-'));
  await writeJsonl(join(tmp, 'sft.jsonl'), makeSftRecords(1, 24, { minDepth: 2, maxDepth: 3 }));
  await writeJsonl(join(tmp, 'rollouts.jsonl'), await syntheticRollouts(6));
  await writeJsonl(join(tmp, 'rl.jsonl'), makeRlRecords(0, 8));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** A stage's command line for a run folder, and the files that must come out identical. */
interface Stage {
  name: string;
  steps: number;
  argv: (out: string) => string[];
  outputs: string[];
}

const stages: Stage[] = [
  {
    name: 'sft',
    steps: 7,
    argv: (out) => [
      'bin/prefix-rl.js',
      ...['sft', '--data', join(tmp, 'sft.jsonl'), '--init-config', 'configs/models/task-qwen3-0.8m.json', '--tokenizer', 'fixtures/task-tokenizer'],
      ...['--steps', '7', '--batch-size', '4', '--warmup', '2', '--set', 'checkpoint.every=2', '--quiet', '--out', out],
    ],
    outputs: ['model/model.safetensors'],
  },
  {
    name: 'rm train',
    steps: 7,
    argv: (out) => [
      'bin/prefix-rl.js',
      ...['rm', 'train', '--method', 'ipvrm', '--rollouts', join(tmp, 'rollouts.jsonl'), '--model', FIXTURE],
      ...['--steps', '7', '--pairs-per-step', '2', '--margin', '1', '--set', 'checkpoint.every=2', '--quiet', '--out', out],
    ],
    outputs: ['model/model.safetensors'],
  },
  {
    name: 'rl train (distrl, online IPVRM)',
    steps: 6,
    argv: (out) => [
      'test/helpers/rl-run-child.mjs',
      JSON.stringify({
        out,
        resume: 'auto',
        quiet: true,
        model: FIXTURE,
        data: join(tmp, 'rl.jsonl'),
        evalData: join(tmp, 'rl.jsonl'),
        config: {
          algorithm: 'distrl',
          steps: 6,
          rollout: { promptsPerStep: 2, samples: 4, maxNewTokens: 4, batchSize: 16 },
          actor: { lr: 1e-3 },
          rewardModel: { lr: 1e-3 },
          eval: { every: 3, samples: 1, maxNewTokens: 2 },
          checkpoint: { every: 2 },
        },
      }),
    ],
    outputs: ['policy/model.safetensors', 'reward-model/model.safetensors'],
  },
  {
    // A LoRA actor: its checkpoints hold the adapter, which resume attaches to the base model again.
    name: 'rl train (grpo-ipvrm, LoRA actor)',
    steps: 5,
    argv: (out) => [
      'test/helpers/rl-run-child.mjs',
      JSON.stringify({
        out,
        resume: 'auto',
        quiet: true,
        model: FIXTURE,
        data: join(tmp, 'rl.jsonl'),
        config: {
          algorithm: 'grpo-ipvrm',
          steps: 5,
          rollout: { promptsPerStep: 2, samples: 4, maxNewTokens: 4, batchSize: 16 },
          actor: { lr: 1e-2, lora: { rank: 2, alpha: 4 } },
          rewardModel: { lr: 1e-3 },
          checkpoint: { every: 2 },
        },
      }),
    ],
    outputs: ['policy-lora/adapter_model.safetensors', 'policy/model.safetensors', 'reward-model/model.safetensors'],
  },
];

/** Runs one child to its end, or until `killWhen` sees `lines` metrics rows and kills it with SIGKILL. */
function run(argv: string[], options: { env?: Record<string, string>; killAfterRows?: { file: string; rows: number } } = {}): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const watch = options.killAfterRows;
    const poll = watch
      ? setInterval(() => {
          if (!existsSync(watch.file)) return;
          const rows = readFileSync(watch.file, 'utf8')
            .split('\n')
            .filter((line) => line.includes('"step":') && !line.startsWith('{"step":0,')).length;
          if (rows >= watch.rows) child.kill('SIGKILL');
        }, 2)
      : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, stderr });
    });
  });
}

/** A folder-name form of the stage's name. */
const slug = (stage: Stage) => stage.name.replace(/[^a-z0-9]+/gi, '-');

const resumeArgs = (stage: Stage, out: string) => (stage.name.startsWith('rl') ? stage.argv(out) : [...stage.argv(out), '--resume', 'auto']);

async function metricsWithoutTiming(dir: string): Promise<Record<string, number>[]> {
  const text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => Object.fromEntries(Object.entries(JSON.parse(line) as Record<string, number>).filter(([name]) => !isTimingMetric(name))));
}

/** The final checkpoint's optimizer states (byte for byte: moments and step counts). */
async function optimizerStates(dir: string): Promise<Buffer[]> {
  const last = join(dir, 'checkpoints', (await readFile(join(dir, 'checkpoints', 'latest'), 'utf8')).trim(), 'optimizers');
  return Promise.all((await readdir(last)).sort().map((file) => readFile(join(last, file))));
}

async function expectSameRun(reference: string, resumed: string, stage: Stage): Promise<void> {
  for (const file of stage.outputs) expect((await readFile(join(resumed, file))).equals(await readFile(join(reference, file)))).toBe(true);
  expect(await optimizerStates(resumed)).toEqual(await optimizerStates(reference));
  expect(await metricsWithoutTiming(resumed)).toEqual(await metricsWithoutTiming(reference));
  const summary = (dir: string) => {
    const { out: _out, seconds: _seconds, model: _model, ...rest } = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    return rest;
  };
  expect(summary(resumed)).toEqual(summary(reference));
}

describe.each(stages)('$name', (stage) => {
  let reference: string;
  beforeAll(async () => {
    reference = join(tmp, `${slug(stage)}-reference`);
    const exit = await run(stage.argv(reference));
    expect(exit).toMatchObject({ code: 0 });
    expect((await metricsWithoutTiming(reference)).filter((row) => row.step > 0)).toHaveLength(stage.steps);
  });

  test('killed at a random step and resumed: the same run, bit for bit', async () => {
    const out = join(tmp, `${slug(stage)}-random`);
    const rows = 1 + Math.floor(Math.random() * (stage.steps - 2));
    const killed = await run(stage.argv(out), { killAfterRows: { file: join(out, 'metrics.jsonl'), rows } });
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(out, 'summary.json'))).toBe(false);
    const resumed = await run(resumeArgs(stage, out));
    expect(resumed.stderr).not.toMatch(/Error/);
    expect(resumed.code).toBe(0);
    await expectSameRun(reference, out, stage);
  });

  test.each(['checkpoint-write@4', 'checkpoint-latest@2'])(
    'killed at %s and resumed: the half-written checkpoint is never loaded',
    async (failpoint) => {
      const out = join(tmp, `${slug(stage)}-${failpoint.replace('@', '-')}`);
      const killed = await run(stage.argv(out), { env: { PREFIX_RL_FAILPOINT: failpoint } });
      expect(killed.signal).toBe('SIGKILL');
      const checkpoints = await readdir(join(out, 'checkpoints'));
      if (failpoint.startsWith('checkpoint-write')) {
        // Step 4's checkpoint exists only as a .tmp- folder; latest still names step 2.
        expect(checkpoints.some((entry) => entry.startsWith('.tmp-step-000004'))).toBe(true);
        expect(checkpoints).not.toContain('step-000004');
        expect((await readFile(join(out, 'checkpoints', 'latest'), 'utf8')).trim()).toBe('step-000002');
      } else {
        // Step 2's checkpoint is complete but not yet named by latest: the run resumes from the start.
        expect(checkpoints).toContain('step-000002');
        expect(checkpoints).not.toContain('latest');
      }
      const resumed = await run(resumeArgs(stage, out));
      expect(resumed.code).toBe(0);
      expect((await readdir(join(out, 'checkpoints'))).some((entry) => entry.startsWith('.tmp-'))).toBe(false);
      await expectSameRun(reference, out, stage);
    },
  );
});

test('resuming a finished run trains nothing and reports its summary', async () => {
  const stage = stages[0];
  const out = join(tmp, `${slug(stage)}-reference`);
  const before = await readFile(join(out, 'metrics.jsonl'), 'utf8');
  const again = await run(resumeArgs(stage, out));
  expect(again.code).toBe(0);
  expect(again.stderr).toMatch(/finished run/);
  expect(await readFile(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
});

test('a resume with another config is refused and changes nothing', async () => {
  const out = join(tmp, 'sft-changed');
  const killed = await run(stages[0].argv(out), { env: { PREFIX_RL_FAILPOINT: 'step@3' } });
  expect(killed.signal).toBe('SIGKILL');
  const before = await readFile(join(out, 'metrics.jsonl'), 'utf8');
  const changed = await run([...stages[0].argv(out).map((arg) => (arg === '4' ? '8' : arg)), '--resume', 'auto']);
  expect(changed.code).toBe(1);
  expect(changed.stderr).toMatch(/another setup \(batchSize differ/);
  expect(await readFile(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
});

test('the report reads the three real runs: every stage, its metrics and summary, a chart per logged curve', async () => {
  const runs = await readRuns(stages.slice(0, 3).map((stage) => join(tmp, `${slug(stage)}-reference`)));
  expect(runs.map((run) => [run.stage, run.metrics.length > 0, run.summary !== undefined])).toEqual([
    ['sft', true, true],
    ['rm', true, true],
    ['rl', true, true],
  ]);
  const charted = new Set(planCharts(runs).flatMap((chart) => chart.metrics));
  for (const name of ['train/loss', 'reward_model/pair_acc', 'critic/score/mean', 'val/accuracy', 'actor/topk_pg_loss', 'reward_model/acc'])
    expect(charted).toContain(name);
});
