// Files that are never left half-written, and output paths that never clobber inputs. A file is replaced by writing
// a temporary sibling, fsyncing it and renaming it over the target (rename is atomic within a folder); a folder
// likewise is built aside and renamed into place. A file that must be new is linked into place instead, which fails
// if the name exists: the check at a command's start cannot see a command that runs at the same time.
import { closeSync, fsyncSync, openSync, realpathSync } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A sibling path for a temporary file or folder: hidden, unique, recognisable (TEMP_PREFIX). */
export function tempSibling(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
}
export const TEMP_PREFIX = '.tmp-';

/** The folder name of a training step's files (checkpoints, a rollout server's weights): step-NNNNNN. */
export const stepFolderName = (step: number) => `step-${String(step).padStart(6, '0')}`;

/**
 * Removes the temporary siblings (tempSibling) under `dir`, `depth` folder levels down, that a killed process left
 * behind: those whose writer (the pid in the name) no longer runs. A live writer's are kept. Returns what it removed.
 */
export async function removeStaleTemps(dir: string, depth = 2): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    const writer = /^\.tmp-.+\.(\d+)\.[0-9a-f]{8}$/.exec(entry.name);
    if (writer && !processRuns(Number(writer[1]))) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    } else if (entry.isDirectory() && depth > 0) {
      removed.push(...(await removeStaleTemps(path, depth - 1)));
    }
  }
  return removed;
}

/** Whether a process with this pid runs on this machine. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // it runs, as another user
  }
}

/** Flushes a file or folder to disk (a folder's fsync makes the renames inside it durable). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** How a finished file takes its place. */
export interface PlaceOptions {
  /**
   * Whether an existing file is replaced (the default; a command's --overwrite). With false the file must still be
   * new when it is written: one that another command wrote since this one checked (checkNewFile) is left as is, and
   * this write fails.
   */
  replace?: boolean;
}

/** Moves the finished, fsynced temporary sibling `temp` to `file`; `temp` is removed if that fails. */
export async function placeFile(temp: string, file: string, options: PlaceOptions = {}): Promise<void> {
  const replace = options.replace ?? true;
  try {
    // rename replaces `file`; link fails (EEXIST, atomically) where `file` exists, so a new file never replaces another's.
    await (replace ? rename(temp, file) : link(temp, file).catch((err: NodeJS.ErrnoException) => renameIfAbsent(err, temp, file)));
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined); // the first error is the one to report
    if (!replace && (err as NodeJS.ErrnoException).code === 'EEXIST') {
      const message = `${file} already exists: another command wrote it meanwhile; it was left as is (pass --overwrite to replace it)`;
      throw Object.assign(new Error(message), { code: 'EEXIST' });
    }
    throw err;
  }
  if (!replace) await rm(temp, { force: true }); // linked: the data stays, under `file` (renamed: nothing left)
  fsyncPath(dirname(file));
}

/**
 * Where the file system has no hard links (exFAT, some network and FUSE mounts), a rename after checking that `file`
 * is still absent: the same result, with a window as short as the check. Other errors pass on.
 */
async function renameIfAbsent(err: NodeJS.ErrnoException, temp: string, file: string): Promise<void> {
  if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(err.code ?? '')) throw err;
  if (await exists(file)) throw Object.assign(new Error(`link ${file}: exists`), { code: 'EEXIST' });
  await rename(temp, file);
}

/** Writes `data` to `file` atomically: readers see the old content or the new, never a mix or a truncated file. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: PlaceOptions = {}): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temp = tempSibling(file);
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await placeFile(temp, file, options);
}

/** Every file under `dir` (recursively) and the folders themselves, fsynced: call before renaming `dir` into place. */
export async function fsyncTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncTree(path);
    else if (entry.isFile()) fsyncPath(path);
  }
  fsyncPath(dir);
}

/**
 * Builds a folder aside (`build` writes into the temporary folder it is given), fsyncs it and renames it to `dir`.
 * An existing `dir` is moved away first and deleted after, so a crash leaves the old folder or the new one whole
 * (and at worst a `.tmp-` sibling), never a mix of both.
 */
export async function writeFolderAtomic(dir: string, build: (temp: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  const temp = tempSibling(dir);
  await mkdir(temp);
  try {
    await build(temp);
    await fsyncTree(temp);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
  const old = (await exists(dir)) ? tempSibling(dir) : undefined;
  if (old) await rename(dir, old);
  await rename(temp, dir);
  fsyncPath(dirname(dir));
  if (old) await rm(old, { recursive: true, force: true });
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `inner` is `outer` or lies inside it, after resolving both and following symbolic links (through the part
 * of each path that exists): `--out link/file` with `link` pointing into an input is inside it.
 */
export function isWithin(inner: string, outer: string): boolean {
  const rel = relative(realish(outer), realish(inner));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** `path` resolved, its longest existing prefix through realpath (links followed), the rest appended as written. */
function realish(path: string): string {
  const absolute = resolve(path);
  let [existing, rest] = [absolute, ''];
  for (;;) {
    try {
      return join(realpathSync(existing), rest);
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return absolute;
      [existing, rest] = [parent, join(basename(existing), rest)];
    }
  }
}

/**
 * Refuses an output path that is, holds or lies inside one of the inputs: writing it would destroy what the command
 * reads. `inputs` maps a flag (e.g. '--model') to its path; undefined entries are skipped.
 */
export function checkOutputApart(outFlag: string, out: string, inputs: Record<string, string | undefined>): void {
  for (const [flag, input] of Object.entries(inputs)) {
    if (input === undefined) continue;
    if (isWithin(out, input) || isWithin(input, out)) {
      throw new Error(`${outFlag} ${out} overlaps ${flag} ${input}: a command never writes over what it reads; choose another ${outFlag}`);
    }
  }
}

/**
 * Refuses to replace an existing file unless `overwrite` (the CLI's --overwrite). The write must then pass
 * `{ replace: overwrite }` (PlaceOptions): this early check cannot see a command that writes the same file meanwhile.
 */
export async function checkNewFile(flag: string, file: string, overwrite: boolean): Promise<void> {
  if (!overwrite && (await exists(file))) throw new Error(`${flag} ${file} already exists; pass --overwrite to replace it`);
}

/** An output file's checks, before anything is read or written: apart from every input, and new unless `overwrite`. */
export async function checkOutputFile(flag: string, file: string, inputs: Record<string, string | undefined>, overwrite: boolean): Promise<void> {
  checkOutputApart(flag, file, inputs);
  await checkNewFile(flag, file, overwrite);
}
