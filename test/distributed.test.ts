// Data-parallel training over c10d (Gloo, 2 ranks of 1 intra-op thread each, launched by `prefix-rl launch`): the
// collectives; 2 ranks with half of every batch end with the parameters of 1 process with the whole batch, for
// sft, rm train and rl train (GRPO, and DistRL with the online IPVRM: its rollouts, sampled in shares, are the
// single process's, so the runs agree bit for bit); a rank that dies or hangs makes the others fail within the
// timeout naming it; ranks started with different configs are refused at start; a killed 2-rank run resumes
// exactly. The ranks are child processes of
// the compiled CLI (dist/, built by npm test's pretest).
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonl } from '../lib/data/index.js';
import { defaultBackend, initProcessGroup, launchEnv, launchVariables, type ProcessGroup } from '../lib/distributed/index.js';
import { timeIsUp, type TrainingSession } from '../lib/train/common.js';
import { readSafetensors } from '../lib/model/index.js';
import { addon } from '../lib/native/addon.js';
import { makeRlRecords, makeSftRecords } from '../lib/task/index.js';
import { syntheticRollouts } from './helpers/synthetic-rollouts.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
const CLI = join(process.cwd(), 'bin/prefix-rl.js');
const gloo = addon().buildInfo().distributedBackends.includes('gloo');
const nccl = addon().buildInfo().distributedBackends.includes('nccl');
const withGloo = gloo ? describe : describe.skip;
jest.setTimeout(120_000);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-dist-'));
  await writeJsonl(join(tmp, 'sft.jsonl'), makeSftRecords(1, 16, { minDepth: 2, maxDepth: 3 }));
  await writeJsonl(join(tmp, 'rollouts.jsonl'), await syntheticRollouts(6));
  await writeJsonl(join(tmp, 'rl.jsonl'), makeRlRecords(0, 8));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node argv` to its end; one intra-op thread, as each rank of a 2-rank job on 2 cores. */
function node(argv: string[], env: Record<string, string> = {}): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env: { ...process.env, PREFIX_RL_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const launch = (flags: string[], command: string[]) => node([CLI, 'launch', '--nproc', '2', ...flags, '--', ...command]);

/** Each rank's JSON line of a dist-child scenario, by rank. */
function rankLines(stdout: string): Record<number, Record<string, unknown>> {
  const lines = stdout
    .split('\n')
    .filter((line) => line.includes('{"rank"'))
    .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>);
  return Object.fromEntries(lines.map((line) => [line.rank as number, line]));
}

/**
 * ‖a − b‖ over the tensors of two safetensors files of the same names and shapes, relative to ‖a − start‖ (how far
 * training moved the weights): AdamW's near-sign updates of near-zero gradients amplify rounding into single
 * elements, so the whole update, not the largest element, is the scale.
 */
async function relativeDifference(a: string, b: string, start: string): Promise<number> {
  const [x, y, z] = [await readSafetensors(a), await readSafetensors(b), await readSafetensors(start)];
  expect([...x.tensors.keys()].sort()).toEqual([...y.tensors.keys()].sort());
  let [difference, update] = [0, 0];
  for (const [name, tensor] of x.tensors) {
    const [u, v, w] = [tensor.toNumbers(), y.tensors.get(name)!.toNumbers(), z.tensors.get(name)!.toNumbers()];
    u.forEach((value, i) => {
      difference += (value - v[i]) ** 2;
      update += (value - w[i]) ** 2;
    });
  }
  for (const t of [x, y, z].flatMap((file) => [...file.tensors.values()])) t.dispose();
  return Math.sqrt(difference / update);
}

/** The metrics rows without timings (which differ run to run). */
async function metrics(run: string): Promise<Record<string, number>[]> {
  const rows = (await readFile(join(run, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  return rows.map((line) =>
    Object.fromEntries(Object.entries(JSON.parse(line) as Record<string, number>).filter(([key]) => !/^(timing_s|perf)\//.test(key))),
  );
}

test('a time limit stops every rank at the same step: any rank past it stops them all', async () => {
  const group = (othersUp: boolean) =>
    ({ worldSize: 2, rank: 0, allReduceNumbers: async ([up]: number[]) => [Math.max(up, othersUp ? 1 : 0)] }) as unknown as ProcessGroup;
  const session = (othersUp: boolean) => ({ trainees: { model: { group: group(othersUp) } } }) as unknown as TrainingSession<unknown>;
  const now = performance.now();
  expect(await timeIsUp(session(true), now, 60)).toBe(true); // this rank's own clock is not past the limit
  expect(await timeIsUp(session(false), now, 60)).toBe(false);
  expect(await timeIsUp(session(false), now - 61 * 60_000, 60)).toBe(true);
  expect(await timeIsUp(session(true), now, undefined)).toBe(false);
});

test('launchEnv reads the torchrun variables and names a missing or malformed one', () => {
  expect(launchEnv({})).toBeUndefined();
  expect(launchEnv({ WORLD_SIZE: '1' })).toBeUndefined();
  const env = { WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'node0', MASTER_PORT: '29500' };
  expect(launchEnv(env)).toEqual({ rank: 3, localRank: 1, worldSize: 4, localWorldSize: 2, masterAddr: 'node0', masterPort: 29500 });
  expect(() => launchEnv({ ...env, RANK: '4' })).toThrow(/RANK=4 must be an integer in \[0, 3\]/);
  expect(() => launchEnv({ ...env, MASTER_PORT: undefined })).toThrow(/MASTER_PORT is not set/);
  // A script that sets LOCAL_RANK but not LOCAL_WORLD_SIZE (many SLURM ones).
  expect(launchEnv({ ...env, LOCAL_WORLD_SIZE: undefined })).toMatchObject({ localRank: 1, localWorldSize: 2 });
  expect(() => launchEnv({ ...env, MASTER_ADDR: '' })).toThrow(/MASTER_ADDR is not set/);
  // What launch writes, launchEnv reads back.
  expect(launchVariables(launchEnv(env)!, 1)).toEqual({ ...env, GROUP_RANK: '1' });
});

withGloo('over Gloo, 2 ranks', () => {
  test('collectives: all-reduce in buckets over dtypes, gradients, broadcast, variable all-gather, objects', async () => {
    const { code, stdout, stderr } = await launch(['--exec'], ['node', 'test/helpers/dist-child.mjs', 'collectives']);
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
    const ranks = rankLines(stdout);
    for (const rank of [0, 1]) {
      expect(ranks[rank]).toMatchObject({
        sum: { a: [10, 12, 14, 16, 18, 20], b: [2], c: [1, 2 ** 41] },
        max: [1, 0],
        numbers: [1, 2],
        // p: 1 + 2 from the two ranks; q had no gradient anywhere and keeps none; r only on rank 1.
        grads: { p: [3, 3], q: null, r: [7] },
        reduced: { p: Array(16).fill(2), q: null, r: Array(16).fill(7), buckets: 3, startedDuringBackward: rank === 1 ? 1 : 0 },
        afterAbandoned: { p: Array(16).fill(4), r: Array(16).fill(28) },
        broadcast: [1, 1],
        gathered: [
          { shape: [1, 2], values: [0, 0] },
          { shape: [2, 2], values: [1, 1, 1, 1] },
        ],
        objects: [
          { rank: 0, text: 'é' },
          { rank: 1, text: 'éé' },
        ],
      });
      expect(ranks[rank].mismatch).toMatch(/allGather: rank 1 gave a tensor of another dtype|allGather: rank 0 gave a tensor of another dtype/);
    }
  });

  test('a rank that dies makes the others fail at once, naming it; the launcher exits with its code', async () => {
    const { code, stdout, stderr } = await launch(['--timeout', '30', '--grace', '5', '--exec'], ['node', 'test/helpers/dist-child.mjs', 'dies']);
    expect(code).toBe(3);
    expect(stderr).toMatch(/launch: rank 1 exited with code 3/);
    const survivor = rankLines(stdout)[0];
    expect(survivor.code).toBe('ERR_DISTRIBUTED');
    expect(survivor.error).toMatch(/rank 0: collective #2 \(allReduce\) failed: rank 1 \(its last was #1\) did not arrive/);
    expect(survivor.seconds).toBeLessThan(10); // the broken connection, not the 30 s timeout
  });

  test('a rank killed by a signal makes the launcher exit as a shell reports it, 128 + the signal', async () => {
    const { code, stderr } = await launch(['--timeout', '30', '--grace', '5', '--exec'], ['node', 'test/helpers/dist-child.mjs', 'killed']);
    expect(stderr).toMatch(/launch: rank 1 was killed by SIGKILL/);
    expect(code).toBe(137);
  });

  test('a rank that hangs makes the others fail after the timeout, naming it', async () => {
    const { stdout } = await launch(['--timeout', '1', '--grace', '1', '--exec'], ['node', 'test/helpers/dist-child.mjs', 'hangs']);
    const waiting = rankLines(stdout)[0];
    expect(waiting.error).toMatch(/rank 1 \(its last was #0\) did not arrive.*Timed out/);
    expect(waiting.seconds).toBeGreaterThan(0.9);
    expect(waiting.seconds).toBeLessThan(10);
  });

  test('a rank whose peers never start fails the rendezvous after the timeout with the setup to check', async () => {
    const env = { WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '1', PREFIX_RL_DIST_TIMEOUT: '1' };
    const { code, stderr } = await node([CLI, 'sft', '--data', join(tmp, 'sft.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'alone')], env);
    expect(code).toBe(1);
    expect(stderr).toMatch(/rank 0 could not join the process group at 127\.0\.0\.1:1 \(world size 2.*same MASTER_ADDR, MASTER_PORT and WORLD_SIZE/);
    expect(existsSync(join(tmp, 'alone'))).toBe(false);
  });

  test('ranks started with different configs are refused at start, naming the keys', async () => {
    const port = String(20000 + Math.floor(Math.random() * 20000));
    const rankRun = (rank: number, lr: string) =>
      node([CLI, 'sft', '--data', join(tmp, 'sft.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'mixed'), '--lr', lr, '--quiet'], {
        WORLD_SIZE: '2',
        RANK: String(rank),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: port,
        PREFIX_RL_DIST_TIMEOUT: '30',
      });
    const exits = await Promise.all([rankRun(0, '0.001'), rankRun(1, '0.002')]);
    for (const { code, stderr } of exits) {
      expect(code).toBe(1);
      expect(stderr).toMatch(/the ranks were started with different setups \(rank 1 differs from rank 0 in config\.lr\)/);
    }
    expect(existsSync(join(tmp, 'mixed'))).toBe(false);
  });

  const sftArgs = (out: string) => [
    'sft',
    '--data',
    join(tmp, 'sft.jsonl'),
    '--model',
    FIXTURE,
    '--steps',
    '3',
    '--batch-size',
    '6',
    '--quiet',
    '--out',
    out,
  ];
  const rmArgs = (method: string, out: string) => [
    ...['rm', 'train', '--method', method, '--rollouts', join(tmp, 'rollouts.jsonl'), '--model', FIXTURE],
    ...['--steps', '3', '--pairs-per-step', '3', '--quiet', '--out', out],
  ];
  test.each([
    ['sft', sftArgs, 'model/model.safetensors'],
    ['rm train ipvrm (token mean)', (out: string) => rmArgs('ipvrm', out), 'model/model.safetensors'],
    ['rm train dpo-rm', (out: string) => rmArgs('dpo-rm', out), 'model/model.safetensors'],
  ])('%s: 2 ranks with half of each batch end where 1 process with the whole batch does', async (name, argv, weights) => {
    const [one, two] = [join(tmp, `${name}-1`), join(tmp, `${name}-2`)].map((dir) => dir.replace(/ /g, '_'));
    const single = await node([CLI, ...argv(one)]);
    expect(single.code).toBe(0);
    const pair = await launch([], argv(two));
    expect({ code: pair.code, stderr: pair.code === 0 ? '' : pair.stderr }).toEqual({ code: 0, stderr: '' });
    // Rank 0 alone printed the summary and wrote the run; the run resumes (finished) like any other.
    expect(pair.stdout.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(two, 'summary.json')) && existsSync(join(two, 'checkpoints', 'latest'))).toBe(true);
    expect(await relativeDifference(join(one, weights), join(two, weights), join(FIXTURE, 'model.safetensors'))).toBeLessThan(1e-3);
    const [a, b] = [await metrics(one), await metrics(two)];
    expect(b.map((row) => Object.keys(row).sort())).toEqual(a.map((row) => Object.keys(row).sort()));
    a.forEach((row, i) =>
      Object.entries(row).forEach(([key, value]) => expect(Math.abs(b[i][key] - value)).toBeLessThan(1e-5 * (1 + Math.abs(value)))),
    );
  });

  test('ranks that would resume from different points (node-local --out folders) are refused at start', async () => {
    const argv = (out: string) => [...sftArgs(out).map((a) => (a === '3' ? '4' : a)), '--set', 'checkpoint.every=2', '--resume', 'auto'];
    const [interrupted, empty] = [join(tmp, 'local-0'), join(tmp, 'local-1')];
    const crash = await node([CLI, ...argv(interrupted)], { PREFIX_RL_FAILPOINT: 'step@3' });
    expect(crash.code).not.toBe(0);
    const port = String(20000 + Math.floor(Math.random() * 20000));
    const rankRun = (rank: number, out: string) =>
      node([CLI, ...argv(out)], { WORLD_SIZE: '2', RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, PREFIX_RL_DIST_TIMEOUT: '30' });
    const exits = await Promise.all([rankRun(0, interrupted), rankRun(1, empty)]);
    for (const { code, stderr } of exits) {
      expect(code).toBe(1);
      expect(stderr).toMatch(
        /the ranks would continue from different points of the run \(rank 0: step 2, rank 1: the start\): --out must be one folder/,
      );
    }
    expect(existsSync(join(empty, 'run.json'))).toBe(false);
  });

  test('a 2-rank run killed mid-run resumes with --resume auto to the uninterrupted run’s weights, bit for bit', async () => {
    const argv = (out: string) => [...sftArgs(out).map((a) => (a === '3' ? '4' : a)), '--set', 'checkpoint.every=2'];
    const [whole, killed] = [join(tmp, 'sft-whole'), join(tmp, 'sft-killed')];
    expect((await launch([], argv(whole))).code).toBe(0);
    const crash = await node([CLI, 'launch', '--nproc', '2', '--grace', '5', '--', ...argv(killed)], { PREFIX_RL_FAILPOINT: 'step@3' });
    expect(crash.code).not.toBe(0);
    expect(existsSync(join(killed, 'summary.json'))).toBe(false);
    const resumed = await launch([], [...argv(killed), '--resume', 'auto']);
    expect({ code: resumed.code, stderr: resumed.code === 0 ? '' : resumed.stderr }).toEqual({ code: 0, stderr: '' });
    const [a, b] = [await readFile(join(whole, 'model/model.safetensors')), await readFile(join(killed, 'model/model.safetensors'))];
    expect(a.equals(b)).toBe(true);
    expect(await metrics(killed)).toEqual(await metrics(whole));
  });

  test.each([
    ['grpo', 4],
    ['distrl-ipvrm', 4],
    ['distrl-ipvrm', 8], // one micro-batch: rank 0 runs none and sends empty shares and zero gradients
  ])('rl train %s, micro-batches of %i rows: 2 ranks end with the single process’s models, bit for bit', async (algorithm, microBatch) => {
    const options = (out: string) =>
      JSON.stringify({
        out,
        model: FIXTURE,
        data: join(tmp, 'rl.jsonl'),
        quiet: true,
        config: {
          algorithm,
          steps: 3,
          rollout: { promptsPerStep: 2, samples: 4, maxNewTokens: 4, batchSize: 4 },
          actor: { lr: 1e-2, microBatch },
          rewardModel: { lr: 1e-3 },
          checkpoint: { every: 2 },
        },
      });
    const [one, two] = [join(tmp, `rl-${algorithm}-${microBatch}-1`), join(tmp, `rl-${algorithm}-${microBatch}-2`)];
    const single = await node(['test/helpers/rl-run-child.mjs', options(one)]);
    expect(single.code).toBe(0);
    const pair = await launch(['--exec'], ['node', 'test/helpers/rl-run-child.mjs', options(two)]);
    expect({ code: pair.code, stderr: pair.code === 0 ? '' : pair.stderr }).toEqual({ code: 0, stderr: '' });
    const models = algorithm === 'grpo' ? ['policy'] : ['policy', 'reward-model'];
    for (const model of models) {
      const [a, b] = [await readFile(join(one, model, 'model.safetensors')), await readFile(join(two, model, 'model.safetensors'))];
      expect(a.equals(b)).toBe(true);
    }
    expect(await metrics(two)).toEqual(await metrics(one));
  });
});

// NCCL itself runs in the GPU script's parity cases (test/cuda/cases.ts); here, the choice and the refusal.
(gloo && !nccl ? test : test.skip)('without NCCL built in: CUDA ranks default to Gloo, and backend nccl is refused with the fix', async () => {
  expect(defaultBackend('cuda')).toBe('gloo');
  expect(defaultBackend('cpu')).toBe('gloo');
  const env = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 29_999 };
  const joining = initProcessGroup(env, { backend: 'nccl', timeoutSeconds: 5 });
  await expect(joining).rejects.toThrow(/built without NCCL .*join with backend gloo/);
  await expect(joining).rejects.toMatchObject({ code: 'ERR_DISTRIBUTED' });
  const bad = await node([CLI, 'sft', '--data', join(tmp, 'sft.jsonl'), '--model', FIXTURE, '--out', join(tmp, 'bad-backend')], {
    WORLD_SIZE: '2', // checked before joining: no peer is needed
    RANK: '0',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: '29998',
    PREFIX_RL_DIST_BACKEND: 'mpi',
  });
  expect(bad.stderr).toMatch(/PREFIX_RL_DIST_BACKEND=mpi must be gloo or nccl/);
});

test('launch refuses a missing command and bad sizes', async () => {
  const noCommand = await node([CLI, 'launch', '--nproc', '2']);
  expect(noCommand.code).toBe(1);
  expect(noCommand.stderr).toMatch(/name the command to run after --/);
  const badRank = await node([CLI, 'launch', '--nproc', '2', '--nnodes', '2', '--node-rank', '2', '--', 'env']);
  expect(badRank.stderr).toMatch(/--node-rank must be an integer in \[0, nnodes\)/);
});
