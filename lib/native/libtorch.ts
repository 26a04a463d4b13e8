// Finding libtorch, for the native build (scripts/build-native.mjs) and for choosing and loading a prebuilt binary
// at run time (loader.ts): one discovery order for both.
//   1. $LIBTORCH                      (an unpacked libtorch, a torch wheel's `torch/` dir, or its share/cmake dir)
//   2. an importable Python torch      (torch.utils.cmake_prefix_path; $PYTHON, default python3)
//   3. the torch wheel from pip        (`pip download --no-deps`, unpacked into the cache dir; works offline with a
//                                       local wheel or mirror; only when downloading is allowed: the build)
//   4. Debian's libtorch-dev           (1.13: too old for some ops, used only as a last resort)
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const DEFAULT_WHEEL_SPEC = 'torch==2.13.0+cpu';

/** cpu, or the CUDA major version a CUDA libtorch was built for (cuda12, cuda13). */
export type LibtorchVariant = 'cpu' | `cuda${number}`;

export interface Libtorch {
  /** The libtorch root (include/, lib/, share/). */
  root: string;
  /** Its CMAKE_PREFIX_PATH. */
  prefix: string;
  libDir: string;
  /** From its headers: "2.13.0" (or Debian's package version). */
  version: string;
  cuda: boolean;
  variant: LibtorchVariant;
  /** Where it was found (for `prefix-rl env` and error messages). */
  source: string;
}

export function cacheDir(): string {
  return process.env.PREFIX_RL_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'prefix-rl');
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return null;
  }
}

/** Given a libtorch root, a wheel's torch/ dir or <root>/share/cmake: the root and its cmake prefix, or null. */
export function resolveTorchRoot(path: string): { root: string; prefix: string } | null {
  for (const root of [path, resolve(path, '..'), resolve(path, '../..')]) {
    if (existsSync(join(root, 'share/cmake/Torch/TorchConfig.cmake')) && existsSync(join(root, 'include'))) {
      return { root, prefix: join(root, 'share/cmake') };
    }
  }
  return null;
}

/** TORCH_VERSION from the headers, which every libtorch distribution ships. */
export function torchVersion(root: string): string {
  // 2.10+ keeps the numbers in headeronly/version.h; older releases in the C++ API's version.h.
  const header = ['include/torch/headeronly/version.h', 'include/torch/csrc/api/include/torch/version.h']
    .map((rel) => join(root, rel))
    .find((path) => existsSync(path) && /TORCH_VERSION_MAJOR \d/.test(readFileSync(path, 'utf8')));
  if (!header) return 'unknown';
  const text = readFileSync(header, 'utf8');
  const [major, minor, patch] = ['MAJOR', 'MINOR', 'PATCH'].map((part) => new RegExp(`TORCH_VERSION_${part} (\\d+)`).exec(text)?.[1]);
  return major ? `${major}.${minor}.${patch}` : 'unknown';
}

/**
 * cpu, or cudaNN: the CUDA major version from a pip install's version.py, else from the CUDA runtime libtorch_cuda
 * names in its dynamic section (read from the start of the file, where the section's strings are).
 */
export function torchVariant(root: string): LibtorchVariant {
  const lib = join(root, 'lib');
  if (!existsSync(join(lib, 'libtorch_cuda.so')) && !existsSync(join(lib, 'libtorch_cuda.dylib'))) return 'cpu';
  const versionPy = join(root, 'version.py');
  const fromPy = existsSync(versionPy) ? /^cuda\s*(?::[^=]*)?=\s*['"](\d+)\./m.exec(readFileSync(versionPy, 'utf8'))?.[1] : undefined;
  if (fromPy) return `cuda${Number(fromPy)}`;
  const fd = openSync(join(lib, 'libtorch_cuda.so'), 'r');
  try {
    const head = Buffer.alloc(8 << 20);
    const read = readSync(fd, head, 0, head.length, 0);
    const major = /libcudart\.so\.(\d+)/.exec(head.subarray(0, read).toString('latin1'))?.[1];
    return major ? `cuda${Number(major)}` : 'cuda12';
  } finally {
    closeSync(fd);
  }
}

function describe(found: { root: string; prefix: string }, source: string): Libtorch {
  const variant = torchVariant(found.root);
  return { ...found, libDir: join(found.root, 'lib'), version: torchVersion(found.root), cuda: variant !== 'cpu', variant, source };
}

function fromEnv(): Libtorch | null {
  const path = process.env.LIBTORCH;
  if (!path) return null;
  const found = resolveTorchRoot(path);
  if (!found) throw new Error(`LIBTORCH=${path} does not contain share/cmake/Torch/TorchConfig.cmake and include/.`);
  return describe(found, 'LIBTORCH');
}

/**
 * Python's torch. Importing it costs a second or two, and the loader asks at every start, so where it was found is
 * remembered (per interpreter and environment) while that folder still holds a libtorch.
 */
function fromPython(): Libtorch | null {
  const python = process.env.PYTHON ?? 'python3';
  const key = createHash('sha256')
    .update(JSON.stringify([python, process.env.PATH, process.env.VIRTUAL_ENV, process.env.CONDA_PREFIX]))
    .digest('hex')
    .slice(0, 16);
  const memo = join(cacheDir(), 'python-torch', `${key}.txt`);
  const remembered = existsSync(memo) ? resolveTorchRoot(readFileSync(memo, 'utf8').trim()) : null;
  if (remembered) return describe(remembered, `python (${python})`);
  const out = run(python, ['-c', 'import torch.utils; print(torch.utils.cmake_prefix_path)']);
  const found = out && resolveTorchRoot(out);
  if (!found) return null;
  try {
    mkdirSync(dirname(memo), { recursive: true });
    writeFileSync(memo, found.prefix + '\n');
  } catch {
    // an unwritable cache only costs the import next time
  }
  return describe(found, `python (${python})`);
}

function wheelTarget(): { spec: string; target: string } {
  const spec = process.env.PREFIX_RL_TORCH_SPEC ?? DEFAULT_WHEEL_SPEC;
  return { spec, target: join(cacheDir(), `libtorch-${spec.replace(/[^A-Za-z0-9.+-]/g, '_')}`) };
}

/** The wheel unpacked in the cache by an earlier build (no download). */
function fromCachedWheel(): Libtorch | null {
  const { spec, target } = wheelTarget();
  const unpacked = resolveTorchRoot(join(target, 'torch'));
  return unpacked ? describe(unpacked, `pip wheel ${spec} (cached in ${target})`) : null;
}

function fromPipWheel(): Libtorch | null {
  const cached = fromCachedWheel();
  if (cached) return cached;
  const { spec, target } = wheelTarget();
  const pip: [string, string[]] = run('python3', ['-m', 'pip', '--version']) ? ['python3', ['-m', 'pip']] : ['pip', []];
  const downloads = join(target, 'download');
  mkdirSync(downloads, { recursive: true });
  process.stderr.write(`find-libtorch: downloading ${spec} with pip into ${downloads}\n`);
  const download = spawnSync(pip[0], [...pip[1], 'download', '--no-deps', '--quiet', '--retries', '1', '-d', downloads, spec], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const wheel = readdirSync(downloads).find((f) => f.endsWith('.whl'));
  if (download.status !== 0 || !wheel) return null;
  // Only the C++ parts are needed: lib/, include/, share/ (about 480 MB of the wheel's files).
  if (run('unzip', ['-q', '-o', join(downloads, wheel), 'torch/lib/*', 'torch/include/*', 'torch/share/*', '-d', target]) === null) {
    run('python3', [
      '-c',
      `import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith(('torch/lib/','torch/include/','torch/share/'))]`,
      join(downloads, wheel),
      target,
    ]);
  }
  rmSync(downloads, { recursive: true, force: true });
  return fromCachedWheel();
}

function fromDebian(): Libtorch | null {
  const cmake = ['/usr/share/cmake/Torch/TorchConfig.cmake', '/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake'].find(existsSync);
  if (!cmake) return null;
  const version = run('dpkg-query', ['-W', '-f=${Version}', 'libtorch-dev']) ?? 'unknown';
  return { root: '/usr', prefix: '/usr', libDir: '/usr/lib/x86_64-linux-gnu', version, cuda: false, variant: 'cpu', source: 'Debian libtorch-dev' };
}

export const LIBTORCH_HOW_TO = `prefix-rl needs libtorch 2.x (2.13 CPU and 2.11 CUDA are tested). Options, in the order tried:
  1. LIBTORCH=/path/to/libtorch      an unpacked libtorch zip, or a torch wheel's torch/ directory
  2. pip install torch               then python3 -c "import torch" must work (CPU: --index-url https://download.pytorch.org/whl/cpu)
  3. pip download --no-deps ${DEFAULT_WHEEL_SPEC}   done by the native build when pip can reach a wheel (PREFIX_RL_TORCH_SPEC: another)
  4. apt-get install --no-install-recommends libtorch-dev libopenblas0-pthread   (Debian 1.13: slow and missing ops; last resort)`;

/** The first libtorch of the discovery order; `allowDownload` (the build) may fetch the wheel with pip. */
export function findLibtorch(options: { allowDownload?: boolean } = {}): Libtorch {
  const attempts = [fromEnv, fromPython, options.allowDownload === false ? fromCachedWheel : fromPipWheel, fromDebian];
  for (const attempt of attempts) {
    const found = attempt();
    if (found) return found;
  }
  throw new Error(`No libtorch found. ${LIBTORCH_HOW_TO}`);
}
