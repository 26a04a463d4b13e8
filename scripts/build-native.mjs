#!/usr/bin/env node
// Builds the addon with cmake-js against the libtorch that scripts/find-libtorch.mjs finds.
// Output: build/Release/prefix_rl.node (what the loader takes first). Flags: --debug, --cuda=on|off|auto, --sanitize
// (AddressSanitizer + UBSan, into build-asan/prefix_rl.node, loaded through PREFIX_RL_ADDON; scripts/asan-tests.sh),
// --portable (no RUNPATH, into build-prebuild/prefix_rl.node: what `npm run prebuild` packs).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const debug = args.includes('--debug');
const sanitize = args.includes('--sanitize');
const portable = args.includes('--portable');
const cuda = (args.find((a) => a.startsWith('--cuda='))?.slice(7) ?? process.env.PREFIX_RL_CUDA ?? 'auto').toUpperCase();

const torch = await findLibtorch();
process.stdout.write(`build-native: libtorch ${torch.version} (${torch.cuda ? 'CUDA' : 'CPU'}) from ${torch.source}\n`);

const nvcc = ['/usr/local/cuda/bin/nvcc', '/usr/local/cuda-13.0/bin/nvcc'].find(existsSync);
const cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin/cmake-js');
// A separate build dir: build/ belongs to node-gyp when the binding.gyp fallback drives this script.
const buildDir = join(root, sanitize ? 'build-asan-cmake' : portable ? 'build-prebuild-cmake' : 'build-cmake');
const cmakeArgs = [
  cmakeJs,
  'compile',
  '--out',
  buildDir,
  '--parallel',
  String(Math.max(1, Number(process.env.PREFIX_RL_BUILD_JOBS ?? 2))),
  ...(debug ? ['--debug'] : []),
  `--CDCMAKE_PREFIX_PATH=${torch.prefix}`,
  `--CDPREFIX_RL_CUDA=${cuda}`,
  ...(nvcc && cuda !== 'OFF' ? [`--CDCMAKE_CUDA_COMPILER=${nvcc}`] : []),
  ...(sanitize ? ['--CDPREFIX_RL_SANITIZE=ON'] : []),
  `--CDPREFIX_RL_PORTABLE=${portable ? 'ON' : 'OFF'}`,
];
const result = spawnSync(process.execPath, cmakeArgs, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  process.stderr.write(`build-native: the native build failed (exit ${result.status}).\n`);
  process.exit(result.status ?? 1);
}
const config = debug ? 'Debug' : 'Release';
if (sanitize || portable) {
  const dir = sanitize ? 'build-asan' : 'build-prebuild';
  mkdirSync(join(root, dir), { recursive: true });
  copyFileSync(join(buildDir, config, 'prefix_rl.node'), join(root, dir, 'prefix_rl.node'));
  process.stdout.write(`build-native: wrote ${dir}/prefix_rl.node${sanitize ? ' (run with scripts/asan-tests.sh)' : ''}\n`);
  process.exit(0);
}
mkdirSync(join(root, 'build/Release'), { recursive: true });
// Copied aside and renamed over the old binary: a process that has the old one loaded keeps its (unchanged) mapping.
const target = join(root, 'build/Release/prefix_rl.node');
copyFileSync(join(buildDir, config, 'prefix_rl.node'), `${target}.tmp-${process.pid}`);
renameSync(`${target}.tmp-${process.pid}`, target);
process.stdout.write('build-native: wrote build/Release/prefix_rl.node\n');
