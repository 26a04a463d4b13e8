// Output safety: an output that overlaps an input is refused, an output folder holding a run or a checkpoint is
// refused unless --resume or --overwrite, every input is checked before anything is written, and files and folders
// are replaced atomically (a failed write leaves the old one whole).
import { jest } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { main } from '../lib/cli/main.js';
import { writeJsonl } from '../lib/data/index.js';
import { loadModel } from '../lib/model/index.js';
import { diffKeys } from '../lib/run/index.js';
import { makeRlRecords, makeSftRecords } from '../lib/task/index.js';
import { checkNewFile, isWithin, removeStaleTemps, writeFileAtomic, writeFolderAtomic } from '../lib/util/fs.js';
import { captureStdout } from './helpers/stdout.js';
import { syntheticRollouts } from './helpers/synthetic-rollouts.js';

const FIXTURE = join(process.cwd(), 'fixtures/models/qwen3-tiny');
let tmp: string;

beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-outputs-'));
  captureStdout();
  jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
});
afterEach(async () => {
  jest.restoreAllMocks();
  await rm(tmp, { recursive: true, force: true });
});

/** Every file under `dir` with its bytes, to check that a refused command changed nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out[join(entry.parentPath, entry.name)] = (await readFile(join(entry.parentPath, entry.name))).toString('base64');
  }
  return out;
}

async function copyFixture(): Promise<string> {
  const dir = join(tmp, 'policy');
  const model = await loadModel(FIXTURE);
  await model.save(dir);
  model.dispose();
  return dir;
}

const sftArgs = (data: string, out: string) => [
  ...['sft', '--data', data, '--init-config', 'configs/models/task-qwen3-0.8m.json', '--tokenizer', 'fixtures/task-tokenizer'],
  ...['--steps', '2', '--batch-size', '2', '--out', out],
];

test('rm train --model X --out X (or a folder inside X) is refused and X is untouched', async () => {
  const model = await copyFixture();
  await writeJsonl(join(tmp, 'rollouts.jsonl'), await syntheticRollouts(2));
  const before = await snapshot(model);
  for (const out of [model, join(model, 'rm')]) {
    await expect(
      main(['rm', 'train', '--method', 'ipvrm', '--rollouts', join(tmp, 'rollouts.jsonl'), '--model', model, '--out', out]),
    ).rejects.toThrow(/--out .* overlaps --model/);
  }
  expect(await snapshot(model)).toEqual(before);
});

test('rollout --data F --out F is refused and F is untouched; an existing --out needs --overwrite', async () => {
  const data = join(tmp, 'rl.jsonl');
  await writeJsonl(data, makeRlRecords(0, 2));
  const before = await readFile(data, 'utf8');
  const args = ['rollout', '--model', FIXTURE, '--data', data, '--samples', '2', '--max-new-tokens', '2'];
  await expect(main([...args, '--out', data])).rejects.toThrow(/overlaps --data/);
  expect(await readFile(data, 'utf8')).toBe(before);
  const out = join(tmp, 'rollouts.jsonl');
  await writeFile(out, 'keep me\n');
  await expect(main([...args, '--out', out])).rejects.toThrow(/already exists; pass --overwrite/);
  expect(await readFile(out, 'utf8')).toBe('keep me\n');
  await main([...args, '--out', out, '--overwrite']);
  expect((await readFile(out, 'utf8')).trim().split('\n')).toHaveLength(4);
  expect((await readdir(tmp)).some((entry) => entry.startsWith('.tmp-'))).toBe(false);
});

test('a training --out that holds a run or a checkpoint is refused unless --resume or --overwrite, and is left as it was', async () => {
  const data = join(tmp, 'sft.jsonl');
  await writeJsonl(data, makeSftRecords(1, 4, { minDepth: 2, maxDepth: 2 }));
  const run = join(tmp, 'run');
  await main(sftArgs(data, run));
  const before = await snapshot(run);
  await expect(main(sftArgs(data, run))).rejects.toThrow(/already holds another run; pass --resume auto .* or --overwrite/);
  // A failing input (a missing data file) with --overwrite: refused before anything is removed or written.
  await expect(main([...sftArgs(join(tmp, 'missing.jsonl'), run), '--overwrite'])).rejects.toThrow(/missing.jsonl/);
  expect(await snapshot(run)).toEqual(before);
  const checkpoint = await copyFixture();
  await expect(main(sftArgs(data, checkpoint))).rejects.toThrow(/already holds a checkpoint/);
  await expect(main([...sftArgs(data, run), '--resume', 'auto', '--overwrite'])).rejects.toThrow(/not both/);
  // --overwrite replaces the run whole: no file of the old one is left.
  await writeFile(join(run, 'stale.txt'), 'old');
  await main([...sftArgs(data, run), '--overwrite']);
  expect(existsSync(join(run, 'stale.txt'))).toBe(false);
  expect(JSON.parse(await readFile(join(run, 'summary.json'), 'utf8'))).toMatchObject({ steps: 2 });
});

test('rl train into an existing run is refused before its metrics are touched; a failing input writes no folder', async () => {
  const data = join(tmp, 'rl.jsonl');
  await writeJsonl(data, makeRlRecords(0, 4));
  await writeFile(join(tmp, 'grpo.yaml'), 'algorithm: grpo\nsteps: 1\nrollout:\n  promptsPerStep: 2\n  samples: 2\n  maxNewTokens: 2\n');
  const args = (out: string, rlData = data) => [
    'rl',
    'train',
    '--config',
    join(tmp, 'grpo.yaml'),
    '--model',
    FIXTURE,
    '--data',
    rlData,
    '--out',
    out,
  ];
  const run = join(tmp, 'run');
  await main(args(run));
  const metrics = await readFile(join(run, 'metrics.jsonl'), 'utf8');
  expect(metrics.trim().split('\n')).toHaveLength(1);
  await expect(main(args(run))).rejects.toThrow(/already holds another run/);
  await expect(main([...args(run, join(tmp, 'missing.jsonl')), '--resume', 'auto'])).resolves.toBeUndefined(); // finished: nothing to do
  expect(await readFile(join(run, 'metrics.jsonl'), 'utf8')).toBe(metrics);
  await expect(main(args(join(tmp, 'fresh'), join(tmp, 'missing.jsonl')))).rejects.toThrow(/missing.jsonl/);
  expect(existsSync(join(tmp, 'fresh'))).toBe(false);
  await expect(main([...args(join(tmp, 'other')), '--resume', join(run, 'checkpoints', 'step-000001')])).rejects.toThrow(/no run to resume/);
});

test('a latest pointer naming a missing checkpoint is a clear error; a .tmp- checkpoint is never loaded', async () => {
  const data = join(tmp, 'sft.jsonl');
  await writeJsonl(data, makeSftRecords(1, 4, { minDepth: 2, maxDepth: 2 }));
  const run = join(tmp, 'run');
  await main([...sftArgs(data, run), '--set', 'checkpoint.every=1']);
  await rm(join(run, 'summary.json'));
  await writeFile(join(run, 'checkpoints', 'latest'), 'step-000009\n');
  await expect(main([...sftArgs(data, run), '--resume', 'auto'])).rejects.toThrow(/latest names 'step-000009', which is not a complete checkpoint/);
  await expect(main([...sftArgs(data, run), '--resume', join(tmp, 'elsewhere')])).rejects.toThrow(/is not a checkpoint of the run/);
  await mkdir(join(run, 'checkpoints', '.tmp-step-000003.1.x'));
  await writeFile(join(run, 'checkpoints', 'latest'), 'step-000002\n');
  await main([...sftArgs(data, run), '--resume', 'auto']);
  expect(await readdir(join(run, 'checkpoints'))).toEqual(['latest', 'step-000001', 'step-000002']);
});

test('writeFolderAtomic: a failed build leaves the old folder whole; a rebuild leaves no stale file', async () => {
  const dir = join(tmp, 'ckpt');
  await writeFolderAtomic(dir, async (temp) => {
    await writeFile(join(temp, 'config.json'), '{"old": true}');
    await writeFile(join(temp, 'model.safetensors'), 'old weights');
  });
  await expect(
    writeFolderAtomic(dir, async (temp) => {
      await writeFile(join(temp, 'model.safetensors'), 'new weights');
      throw new Error('killed mid-write');
    }),
  ).rejects.toThrow(/killed mid-write/);
  expect(await readFile(join(dir, 'config.json'), 'utf8')).toBe('{"old": true}');
  expect(await readFile(join(dir, 'model.safetensors'), 'utf8')).toBe('old weights');
  await writeFolderAtomic(dir, (temp) => writeFile(join(temp, 'model.safetensors'), 'new weights'));
  expect(await readdir(dir)).toEqual(['model.safetensors']);
  expect(await readdir(tmp)).toEqual(['ckpt']);
  await writeFileAtomic(join(tmp, 'a.txt'), 'one');
  await writeFileAtomic(join(tmp, 'a.txt'), 'two');
  expect(await readFile(join(tmp, 'a.txt'), 'utf8')).toBe('two');
});

test('a file written as new (replace: false) never replaces one another command wrote after the check', async () => {
  const file = join(tmp, 'report.html');
  await checkNewFile('--out', file, false);
  await writeFileAtomic(file, 'the other command'); // it passed the same check and finished first
  await expect(writeFileAtomic(file, 'this command', { replace: false })).rejects.toThrow(
    `${file} already exists: another command wrote it meanwhile; it was left as is`,
  );
  expect(await readFile(file, 'utf8')).toBe('the other command');
  expect(await readdir(tmp)).toEqual(['report.html']);
  await writeFileAtomic(join(tmp, 'b.txt'), 'new', { replace: false });
  expect(await readFile(join(tmp, 'b.txt'), 'utf8')).toBe('new');
  expect((await readdir(tmp)).sort()).toEqual(['b.txt', 'report.html']);
});

test('an output reached through a symbolic link into an input is inside it', async () => {
  const input = join(tmp, 'run');
  await mkdir(input);
  await symlink(input, join(tmp, 'link'));
  expect(isWithin(join(tmp, 'link', 'summary.json'), input)).toBe(true);
  expect(isWithin(join(tmp, 'link', 'not-yet', 'deeper.json'), input)).toBe(true);
  expect(isWithin(join(tmp, 'elsewhere.json'), input)).toBe(false);
});

test('path helpers: overlap and config differences', () => {
  expect(isWithin('/a/b/c', '/a/b')).toBe(true);
  expect(isWithin('/a/b', '/a/b')).toBe(true);
  expect(isWithin('/a/bc', '/a/b')).toBe(false);
  expect(diffKeys({ a: 1, b: { c: [1, 2], d: 'x' } }, { a: 1, b: { c: [1, 3] }, e: 0 })).toEqual(['b.c', 'b.d', 'e']);
});

test('temporary files a killed writer left are removed when a run begins; a live writer’s are kept', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-stale-'));
  try {
    const dead = 4_194_303; // above any pid this machine has handed out (kernel.pid_max's default ceiling − 1)
    await mkdir(join(tmp, 'checkpoints', `.tmp-step-2.${dead}.0123abcd`), { recursive: true });
    await writeFile(join(tmp, `.tmp-metrics.jsonl.${dead}.abcdef01`), 'half a row');
    await writeFile(join(tmp, `.tmp-summary.json.${process.pid}.abcdef02`), 'being written');
    await writeFile(join(tmp, '.tmp-notes'), 'not a temporary sibling');
    const removed = await removeStaleTemps(tmp);
    expect(removed.map((p) => relative(tmp, p)).sort()).toEqual([
      `.tmp-metrics.jsonl.${dead}.abcdef01`,
      join('checkpoints', `.tmp-step-2.${dead}.0123abcd`),
    ]);
    expect((await readdir(tmp)).sort()).toEqual(['.tmp-notes', `.tmp-summary.json.${process.pid}.abcdef02`, 'checkpoints']);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
