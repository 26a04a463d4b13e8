// One writer per run folder: a command that begins writing a folder holds it (.writer) until it ends, so a second
// command on a folder that a live one writes — resuming it, or replacing it with --overwrite — is refused and
// changes nothing; a claim left by a killed command on this machine is taken over; a folder that another command
// wrote between this one's checks and its first write is refused too.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunFolder } from '../lib/run/index.js';

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-lock-'));
});
afterEach(() => rm(tmp, { recursive: true, force: true }));

const open = (out: string, extra: { resume?: string; overwrite?: boolean } = {}) => RunFolder.open({ stage: 'sft', out, inputs: {}, ...extra });
const DEAD_PID = 4_194_303; // above any pid this machine has handed out (kernel.pid_max's default ceiling − 1)

test('a folder a live command writes is refused to a second one, resuming or overwriting, until the first ends', async () => {
  const out = join(tmp, 'run');
  const first = await open(out);
  await first.begin({ lr: 1 });
  await first.log({ step: 1, loss: 2 });
  const before = await readFile(join(out, 'metrics.jsonl'), 'utf8');
  for (const extra of [{ resume: 'auto' }, { overwrite: true }]) {
    const second = await open(out, extra);
    await expect(second.begin({ lr: 1 })).rejects.toThrow(
      new RegExp(`${out} is being written by another command \\(pid ${process.pid} on ${hostname()}, since .*\\); wait for it to end`),
    );
    await second.close(); // holds nothing: releases nothing
  }
  expect(await readFile(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
  expect(existsSync(join(out, '.writer'))).toBe(true);
  await first.close();
  expect(await readdir(out)).not.toContain('.writer');
  const resumed = await open(out, { resume: 'auto' });
  await resumed.begin({ lr: 1 });
  await resumed.close();
});

test("a killed command's claim on this machine is taken over; another machine's is not", async () => {
  const out = join(tmp, 'run');
  await mkdir(out);
  const claim = (pid: number, host: string) => JSON.stringify({ pid, host, since: '2026-01-01T00:00:00Z', command: 'prefix-rl sft' });
  await writeFile(join(out, '.writer'), claim(DEAD_PID, hostname()));
  const folder = await open(out, { resume: 'auto' });
  await folder.begin({ lr: 1 });
  expect(JSON.parse(await readFile(join(out, '.writer'), 'utf8')).pid).toBe(process.pid);
  await folder.close();

  await writeFile(join(out, '.writer'), claim(DEAD_PID, 'another-host'));
  const elsewhere = await open(out, { resume: 'auto' });
  await expect(elsewhere.begin({ lr: 1 })).rejects.toThrow(
    /being written by another command \(pid 4194303 on another-host.*remove .*\.writer if it no longer runs/,
  );
});

test('a run that another command checkpointed between open and begin is refused, its checkpoint kept', async () => {
  const out = join(tmp, 'run');
  const first = await open(out);
  await first.begin({ lr: 1 });
  await first.close();
  const late = await open(out, { resume: 'auto' }); // sees the run without a checkpoint
  // Meanwhile another command resumes it and writes a checkpoint.
  await mkdir(join(out, 'checkpoints', 'step-000002'), { recursive: true });
  await writeFile(join(out, 'checkpoints', 'step-000002', 'state.json'), JSON.stringify({ stage: 'sft', step: 2, session: {} }));
  await writeFile(join(out, 'checkpoints', 'latest'), 'step-000002\n');
  await expect(late.begin({ lr: 1 })).rejects.toThrow(/changed while this command started \(another command wrote it\); run the command again/);
  expect(existsSync(join(out, 'checkpoints', 'step-000002', 'state.json'))).toBe(true);
  expect(existsSync(join(out, '.writer'))).toBe(false);
});
