// RL with rollouts from an OpenAI-compatible server: `prefix-rl serve` in another process samples, the trainer
// recomputes π_old, and after each policy update the weights reach the server (/v1/reload: the checkpoint, or a LoRA
// actor's adapter). Synced every step, the server's log-probs are the trainer's and the run is the local run bit for
// bit; unsynced, they drift apart. The processes run the compiled CLI (dist/, built by npm test's pretest).
import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRlConfig } from '../lib/config/rl.js';
import { writeJsonl } from '../lib/data/index.js';
import type { LoraTarget } from '../lib/model/index.js';
import { OpenAIEngine } from '../lib/rollout/openai.js';
import { makeRlRecords } from '../lib/task/index.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
jest.setTimeout(120_000);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-rl-serve-'));
  await writeJsonl(join(tmp, 'rl.jsonl'), makeRlRecords(0, 8));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** A `prefix-rl serve --allow-reload` child on a free port; resolves to its API URL once it listens. */
async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['bin/prefix-rl.js', 'serve', '--model', FIXTURE, '--port', '0', '--allow-reload'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
      const found = /listening on (\S+)/.exec(stderr);
      if (found) resolve(`${found[1]}/v1`);
    });
    child.on('exit', () => reject(new Error(stderr)));
  });
  return { url, child };
}

/** One rl train run (test/helpers/rl-run-child.mjs) to its end; resolves to its metrics rows. */
function train(out: string, rollout: object, actor: object = {}): Promise<Record<string, number>[]> {
  const options = {
    out,
    model: FIXTURE,
    data: join(tmp, 'rl.jsonl'),
    quiet: true,
    config: {
      algorithm: 'distrl-ipvrm',
      steps: 3,
      rollout: { promptsPerStep: 2, samples: 4, maxNewTokens: 6, batchSize: 4, ...rollout },
      actor: { lr: 1e-2, microBatch: 4, ...actor },
      rewardModel: { lr: 1e-3 },
    },
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/helpers/rl-run-child.mjs', JSON.stringify(options)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', async (code) => {
      if (code !== 0) return reject(new Error(stderr));
      const text = await readFile(join(out, 'metrics.jsonl'), 'utf8');
      resolve(
        text
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line)),
      );
    });
  });
}

const withoutTiming = (rows: Record<string, number>[]) =>
  rows.map((row) => Object.fromEntries(Object.entries(row).filter(([key]) => !/^(timing_s|perf|rollout)\//.test(key))));

test('rollouts from prefix-rl serve, synced each step, give the local run bit for bit', async () => {
  const { url, child } = await startServer();
  try {
    const served = await train(join(tmp, 'served'), { engine: 'openai', url });
    const local = await train(join(tmp, 'local'), {});
    expect(withoutTiming(served)).toEqual(withoutTiming(local));
    // The server's log-probs after each reload are the trainer's π_old (to float32 rounding).
    for (const row of served) expect(row['rollout/logprob_diff_max']).toBeLessThan(1e-5);
    const [a, b] = [await readFile(join(tmp, 'served/policy/model.safetensors')), await readFile(join(tmp, 'local/policy/model.safetensors'))];
    expect(a.equals(b)).toBe(true);
    // One weights folder is left, in the run's own folder there: the last step's (each replaces the one before).
    const runs = await readdir(join(tmp, 'served/rollout-weights'));
    expect(runs).toHaveLength(1);
    expect(await readdir(join(tmp, 'served/rollout-weights', runs[0]))).toEqual(['step-000002']);
  } finally {
    child.kill('SIGTERM');
  }
});

test('a LoRA actor syncs its adapter; without sync the server falls behind the policy', async () => {
  let { url, child } = await startServer();
  try {
    const lora = await train(join(tmp, 'lora'), { engine: 'openai', url }, { lora: { rank: 2, alpha: 4 }, lr: 5e-2 });
    for (const row of lora) expect(row['rollout/logprob_diff_max']).toBeLessThan(1e-5);
  } finally {
    child.kill('SIGTERM');
  }
  ({ url, child } = await startServer());
  try {
    const stale = await train(join(tmp, 'stale'), { engine: 'openai', url, sync: 'none' });
    expect(stale[0]['rollout/logprob_diff_max']).toBeLessThan(1e-5); // the same starting weights
    expect(stale[2]['rollout/logprob_diff_max']).toBeGreaterThan(1e-2);
  } finally {
    child.kill('SIGTERM');
  }
});

test('the engine is configured and fails clearly', async () => {
  expect(() => resolveRlConfig({ algorithm: 'grpo', rollout: { engine: 'openai' } })).toThrow(/rollout\.url: engine openai samples from a server/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', rollout: { url: 'http://x/v1' } })).toThrow(/rollout\.engine is local/);
  expect(() => resolveRlConfig({ algorithm: 'grpo', rollout: { engine: 'openai', url: 'http://x/v1', sync: 'vllm-lora' } })).toThrow(
    /needs actor\.lora/,
  );
  const headLora = { rank: 2, alpha: 4, targetModules: ['q_proj', 'lm_head'] as LoraTarget[] };
  expect(() =>
    resolveRlConfig({ algorithm: 'grpo', actor: { lora: headLora }, rollout: { engine: 'openai', url: 'http://x/v1', sync: 'vllm-lora' } }),
  ).toThrow(/vLLM does not load an adapter on lm_head/);
  expect(() => new OpenAIEngine({ url: 'ftp://x' })).toThrow(/http\(s\) URL/);
  const engine = new OpenAIEngine({ url: 'http://127.0.0.1:1/v1', model: 'm' });
  await expect(engine.generate([[1, 2]], { maxNewTokens: 2 })).rejects.toThrow(
    /POST http:\/\/127\.0\.0\.1:1\/v1\/completions failed: .*is the server running\?/,
  );
});
