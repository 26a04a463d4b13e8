// One writer per run folder: the claim file (.writer) a command holds while it writes the folder. It says who holds
// it (pid, host, boot id, the process's start time, the command line) and is refreshed every REFRESH_MS, so a claim
// can be judged stale wherever its writer ran: on this machine by its process (gone, or its pid reused by another
// process: a restarted container's pid 1), anywhere by its age (a live writer keeps it fresh).
import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { placeFile, processRuns, tempSibling } from '../util/fs.js';
import { WRITER_FILE } from './layout.js';

/** How often a holder refreshes its claim, and the age past which a claim is stale whoever wrote it. */
export const REFRESH_MS = 30_000;
export const LEASE_MS = 5 * 60_000;

interface Writer {
  pid: number;
  host: string;
  /** The kernel's boot id and the process's start (ticks since boot), where /proc has them. */
  boot?: string;
  started?: string;
  since: string;
  command: string;
}

const readProc = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};
const bootId = () => readProc('/proc/sys/kernel/random/boot_id')?.trim();
/** Field 22 of /proc/<pid>/stat, the start time (after the parenthesised command name, which may hold spaces). */
function processStart(pid: number): string | undefined {
  const line = readProc(`/proc/${pid}/stat`);
  return line?.slice(line.lastIndexOf(')') + 2).split(' ')[19];
}

/** Whether the command that wrote `holder`, `ageMs` ago, may still be writing. */
function mayStillWrite(holder: Writer, ageMs: number, me: Writer): boolean {
  if (ageMs > LEASE_MS) return false;
  if (holder.host !== me.host) return true; // another machine's: only its age tells
  if (holder.boot && me.boot && holder.boot !== me.boot) return false;
  if (!processRuns(holder.pid)) return false;
  return !holder.started || processStart(holder.pid) === holder.started;
}

export class WriterClaim {
  private readonly refresh: NodeJS.Timeout;

  private constructor(
    private readonly file: string,
    private readonly text: string,
  ) {
    const touch = () => utimes(file, new Date(), new Date()).catch(() => undefined);
    this.refresh = setInterval(touch, REFRESH_MS).unref();
  }

  /**
   * Takes `dir` (an existing folder) for this process, refusing one that a command which may still be writing holds;
   * a stale claim is taken over. The claim appears whole (written aside, then linked into place, which fails where
   * one exists), and a stale one is moved aside and removed only if it is still the one judged stale.
   */
  static async take(dir: string): Promise<WriterClaim> {
    const file = join(dir, WRITER_FILE);
    const me: Writer = {
      pid: process.pid,
      host: hostname(),
      boot: bootId(),
      started: processStart(process.pid),
      since: new Date().toISOString(),
      command: process.argv.slice(1).join(' '),
    };
    const text = JSON.stringify(me) + '\n';
    for (let attempt = 0; attempt < 8; attempt++) {
      if (await placeClaim(file, text)) return new WriterClaim(file, text);
      let found: string;
      let ageMs: number;
      try {
        [found, ageMs] = [await readFile(file, 'utf8'), Date.now() - (await stat(file)).mtimeMs];
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw err;
      }
      let holder: Writer | undefined;
      try {
        holder = JSON.parse(found);
      } catch {
        holder = undefined; // unreadable: a file damaged, or being written by something else than a claim
      }
      if (holder ? mayStillWrite(holder, ageMs, me) : ageMs < 10_000) {
        const who = holder
          ? `pid ${holder.pid} on ${holder.host}, since ${holder.since}: ${holder.command}`
          : 'an unreadable claim, written less than 10 s ago';
        throw new Error(
          `${dir} is being written by another command (${who}); wait for it to end (a claim not refreshed for ` +
            `${LEASE_MS / 60_000} minutes is taken over), or remove ${file} if that command no longer runs`,
        );
      }
      const aside = tempSibling(file);
      try {
        await rename(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      // Another command may have taken it over between the read and the move: its fresh claim goes back.
      if ((await readFile(aside, 'utf8')) !== found) await link(aside, file).catch(() => undefined);
      await rm(aside, { force: true });
    }
    throw new Error(`${dir}: could not take the folder: other commands keep claiming it`);
  }

  /** Gives the folder up (the claim is removed if it is still this one). */
  async release(): Promise<void> {
    clearInterval(this.refresh);
    const current = await readFile(this.file, 'utf8').catch(() => undefined);
    if (current === this.text) await rm(this.file, { force: true });
  }
}

/** Puts `text` at `file`, whole, if no file is there: true when placed. */
async function placeClaim(file: string, text: string): Promise<boolean> {
  const temp = tempSibling(file);
  await writeFile(temp, text);
  try {
    await placeFile(temp, file, { replace: false });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}
