#!/usr/bin/env node
// Finds a libtorch 2.x to build and link the addon against, in this order:
//   1. $LIBTORCH                      (an unpacked libtorch, a torch wheel's `torch/` dir, or its share/cmake dir)
//   2. an importable Python torch      (torch.utils.cmake_prefix_path)
//   3. the torch wheel from pip        (`pip download --no-deps`, unpacked into the cache dir; works offline with a
//                                       local wheel or mirror, as on the build machines)
//   4. Debian's libtorch-dev           (1.13: too old for some ops, used only as a last resort, with a warning)
// Prints what it found; with --json prints {prefix, version, cuda, source} for scripts/build-native.mjs.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_WHEEL_SPEC = 'torch==2.13.0+cpu';

export function cacheDir() {
  return process.env.PREFIX_RL_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'prefix-rl');
}

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts }).trim();
  } catch {
    return null;
  }
}

/** Given any of: a libtorch root, a wheel's torch/ dir, or <root>/share/cmake, returns {root, cmakePrefix} or null. */
function resolveTorchRoot(path) {
  const candidates = [path, resolve(path, '..'), resolve(path, '../..')];
  for (const root of candidates) {
    if (existsSync(join(root, 'share/cmake/Torch/TorchConfig.cmake')) && existsSync(join(root, 'include'))) {
      return { root, cmakePrefix: join(root, 'share/cmake') };
    }
  }
  return null;
}

/** Reads TORCH_VERSION from the headers, which every libtorch distribution ships. */
function torchVersion(root) {
  // 2.10+ keeps the numbers in headeronly/version.h; older releases in the C++ API's version.h.
  const header = ['include/torch/headeronly/version.h', 'include/torch/csrc/api/include/torch/version.h']
    .map((rel) => join(root, rel))
    .find((path) => existsSync(path) && /TORCH_VERSION_MAJOR \d/.test(readFileSync(path, 'utf8')));
  if (!header) return 'unknown';
  const text = readFileSync(header, 'utf8');
  const major = /TORCH_VERSION_MAJOR (\d+)/.exec(text)?.[1];
  const minor = /TORCH_VERSION_MINOR (\d+)/.exec(text)?.[1];
  const patch = /TORCH_VERSION_PATCH (\d+)/.exec(text)?.[1];
  return major ? `${major}.${minor}.${patch}` : 'unknown';
}

function describe(found, source) {
  const lib = join(found.root, 'lib');
  const libs = existsSync(lib) ? readdirSync(lib) : [];
  const cuda = libs.some((f) => f.startsWith('libtorch_cuda'));
  return { prefix: found.cmakePrefix, root: found.root, version: torchVersion(found.root), cuda, source };
}

function fromEnv() {
  const path = process.env.LIBTORCH;
  if (!path) return null;
  const found = resolveTorchRoot(path);
  if (!found) throw new Error(`LIBTORCH=${path} does not contain share/cmake/Torch/TorchConfig.cmake and include/.`);
  return describe(found, 'LIBTORCH');
}

function fromPython() {
  const python = process.env.PYTHON ?? 'python3';
  const out = run(python, ['-c', 'import torch.utils; print(torch.utils.cmake_prefix_path)']);
  const found = out && resolveTorchRoot(out);
  return found ? describe(found, `python (${python})`) : null;
}

function fromPipWheel() {
  const spec = process.env.PREFIX_RL_TORCH_SPEC ?? DEFAULT_WHEEL_SPEC;
  const target = join(cacheDir(), `libtorch-${spec.replace(/[^A-Za-z0-9.+-]/g, '_')}`);
  const unpacked = resolveTorchRoot(join(target, 'torch'));
  if (unpacked) return describe(unpacked, `pip wheel ${spec} (cached in ${target})`);
  const pip = run('python3', ['-m', 'pip', '--version']) ? ['python3', ['-m', 'pip']] : ['pip', []];
  const downloads = join(target, 'download');
  mkdirSync(downloads, { recursive: true });
  process.stderr.write(`find-libtorch: downloading ${spec} with pip into ${downloads}\n`);
  const download = spawnSync(pip[0], [...pip[1], 'download', '--no-deps', '--quiet', '--retries', '1', '-d', downloads, spec], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const wheel = readdirSync(downloads).find((f) => f.endsWith('.whl'));
  if (download.status !== 0 || !wheel) return null;
  // Only the C++ parts are needed: lib/, include/, share/ (about 480 MB of the wheel's files).
  const unzip = run('unzip', ['-q', '-o', join(downloads, wheel), 'torch/lib/*', 'torch/include/*', 'torch/share/*', '-d', target]);
  if (unzip === null) {
    run('python3', [
      '-c',
      `import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith(('torch/lib/','torch/include/','torch/share/'))]`,
      join(downloads, wheel),
      target,
    ]);
  }
  rmSync(downloads, { recursive: true, force: true });
  const found = resolveTorchRoot(join(target, 'torch'));
  return found ? describe(found, `pip wheel ${spec} (cached in ${target})`) : null;
}

function fromDebian() {
  const root = '/usr';
  if (!existsSync('/usr/share/cmake/Torch/TorchConfig.cmake') && !existsSync('/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake')) return null;
  const version = run('dpkg-query', ['-W', '-f=${Version}', 'libtorch-dev']) ?? 'unknown';
  return { prefix: root, root, version, cuda: false, source: 'Debian libtorch-dev' };
}

const HOW_TO = `No libtorch found. prefix-rl needs libtorch 2.x (2.13 CPU and 2.11 CUDA are tested). Options, in the order tried:
  1. LIBTORCH=/path/to/libtorch      an unpacked libtorch zip, or a torch wheel's torch/ directory
  2. pip install torch               then python3 -c "import torch" must work (CPU: --index-url https://download.pytorch.org/whl/cpu)
  3. pip download --no-deps ${DEFAULT_WHEEL_SPEC}   done automatically when pip can reach a wheel (set PREFIX_RL_TORCH_SPEC for another)
  4. apt-get install --no-install-recommends libtorch-dev libopenblas0-pthread   (Debian 1.13: slow and missing ops; last resort)`;

export function findLibtorch({ allowDownload = true } = {}) {
  const tried = [fromEnv, fromPython, ...(allowDownload ? [fromPipWheel] : []), fromDebian];
  for (const attempt of tried) {
    const found = attempt();
    if (found) return found;
  }
  throw new Error(HOW_TO);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const found = findLibtorch();
    if (process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify(found) + '\n');
    } else {
      process.stdout.write(`libtorch ${found.version} (${found.cuda ? 'CUDA' : 'CPU'}) from ${found.source}\n  CMAKE_PREFIX_PATH=${found.prefix}\n`);
      if (!found.version.startsWith('2.')) process.stdout.write('  warning: libtorch 2.x is required for every feature; this one is older.\n');
    }
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
