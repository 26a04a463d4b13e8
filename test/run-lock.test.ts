// One writer per run folder: a command that begins writing a folder holds it (.writer) until it ends, so a second
// command on a folder that a live one writes — resuming it, or replacing it with --overwrite — is refused and
// changes nothing; a claim left by a killed command on this machine is taken over; a folder that another command
// wrote between this one's checks and its first write is refused too.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunFolder } from '../lib/run/index.js';
import { LEASE_MS } from '../lib/run/writer-claim.js';

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

test('a stale claim is taken over: its process gone, its pid reused, or not refreshed for the lease; a live one is not', async () => {
  const out = join(tmp, 'run');
  await mkdir(out);
  const file = join(out, '.writer');
  const claim = (fields: Record<string, unknown>) => JSON.stringify({ since: '2026-01-01T00:00:00Z', command: 'prefix-rl sft', ...fields });
  const takes = async () => {
    const folder = await open(out, { resume: 'auto' });
    await folder.begin({ lr: 1 });
    expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
    await folder.close();
    expect(existsSync(file)).toBe(false);
  };
  const refuses = async (message: RegExp) => {
    const folder = await open(out, { resume: 'auto' });
    await expect(folder.begin({ lr: 1 })).rejects.toThrow(message);
  };
  // Killed on this machine.
  await writeFile(file, claim({ pid: DEAD_PID, host: hostname() }));
  await takes();
  // This machine's pid, but a process that started at another time (a restarted container's pid 1): not its writer.
  await writeFile(file, claim({ pid: process.pid, host: hostname(), started: '1' }));
  await takes();
  // Another machine's, refreshed: refused, naming how it ends; once older than the lease, taken over.
  await writeFile(file, claim({ pid: DEAD_PID, host: 'another-host' }));
  await refuses(
    /being written by another command \(pid 4194303 on another-host.*a claim not refreshed for 5 minutes is taken over.*remove .*\.writer/,
  );
  const old = new Date(Date.now() - LEASE_MS - 1000);
  await utimes(file, old, old);
  await takes();
  // Unreadable (a claim is always placed whole, so something else wrote it): refused while fresh, taken over once old.
  await writeFile(file, '{"pid": 12');
  await refuses(/an unreadable claim, written less than 10 s ago/);
  await utimes(file, old, old);
  await takes();
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
