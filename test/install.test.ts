// `npm install prefix-rl` without a compiler: the package packed with a prebuilt binary (npm run prebuild), installed
// from its tarball into a fresh folder with no compiler or CMake on PATH and libtorch at another path than at build
// time, loads that binary (chosen by lib/native/loader.ts against the libtorch it finds, load-tested in a child) and
// trains a step; a libtorch of another version gets the fix list, not a crash. The package's contents are checked
// (publint, a size budget, no libtorch inside).
import { jest } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { publint } from 'publint';
import { writeJsonl } from '../lib/data/index.js';
import { findLibtorch } from '../lib/native/libtorch.js';
import { prebuiltName } from '../lib/native/loader.js';
import { makeSftRecords } from '../lib/task/index.js';

const ROOT = process.cwd();
const PREBUILT = join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
jest.setTimeout(600_000);

let tmp: string;
let tarball: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'prefix-rl-install-'));
  // The portable binary for this machine's libtorch (a full native build when it is missing: minutes).
  const torch = findLibtorch({ allowDownload: false });
  const name = prebuiltName(torch);
  if (!existsSync(join(PREBUILT, `${name}.node`))) execFileSync(process.execPath, ['scripts/prebuild.mjs'], { stdio: 'inherit' });
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
  );
  tarball = join(tmp, packed[0].filename);
  (globalThis as { packed?: unknown }).packed = packed[0];
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

test('the package: publint finds no error, the size is within budget, no libtorch is inside, the prebuilt binary is', async () => {
  const packed = (globalThis as { packed?: { size: number; unpackedSize: number; files: { path: string }[] } }).packed!;
  const files = packed.files.map((f) => f.path);
  expect(files.filter((f) => /lib(torch|c10)[^/]*\.(so|dylib)/.test(f))).toEqual([]);
  expect(files.some((f) => /^prebuilds\/[^/]+\/prefix_rl\.torch[\d.]+\.\w+\.node$/.test(f))).toBe(true);
  expect(files.some((f) => f.startsWith('test/') || f.startsWith('benchmarks/') || f.startsWith('build'))).toBe(false);
  expect(packed.size).toBeLessThan(6 << 20); // packed: under 6 MiB with one prebuilt binary
  expect(packed.unpackedSize).toBeLessThan(24 << 20);
  const extracted = join(tmp, 'extracted');
  mkdirSync(extracted);
  execFileSync('tar', ['-xzf', tarball, '-C', extracted]);
  const { messages } = await publint({ pkgDir: join(extracted, 'package'), level: 'error' });
  expect(messages).toEqual([]);
});

test('installed from the tarball without a compiler, with libtorch moved, it loads the prebuilt binary and trains', async () => {
  // PATH: node and a shell only (no cmake, c++, gcc, make).
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  const env: NodeJS.ProcessEnv = {
    HOME: process.env.HOME,
    PATH: bin,
    PREFIX_RL_CACHE: join(tmp, 'cache'),
    npm_config_cache: process.env.npm_config_cache ?? join(process.env.HOME!, '.npm'),
  };
  for (const tool of ['cmake', 'c++', 'g++', 'cc', 'make']) expect(spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status).not.toBe(0);
  // libtorch at a path the build never saw: a hard-linked copy.
  const torch = findLibtorch({ allowDownload: false });
  const moved = join(tmp, 'moved-libtorch', 'torch');
  mkdirSync(dirname(moved), { recursive: true });
  execFileSync('cp', ['-rl', torch.root, moved]);
  env.LIBTORCH = moved;

  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  const started = performance.now();
  const install = spawnSync(process.execPath, [npmCli, 'install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error'], {
    cwd: app,
    env,
    encoding: 'utf8',
  });
  const seconds = (performance.now() - started) / 1000;
  expect({ status: install.status, stderr: install.status === 0 ? '' : install.stderr }).toEqual({ status: 0, stderr: '' });
  expect(seconds).toBeLessThan(30);
  const cli = join(app, 'node_modules', 'prefix-rl', 'bin', 'prefix-rl.js');
  expect(existsSync(join(app, 'node_modules', 'prefix-rl', 'build'))).toBe(false); // nothing was compiled

  const report = spawnSync(process.execPath, [cli, 'env', '--json'], { cwd: app, env, encoding: 'utf8' });
  expect({ status: report.status, stderr: report.status === 0 ? '' : report.stderr }).toEqual({ status: 0, stderr: '' });
  const { addon, build } = JSON.parse(report.stdout);
  expect(addon).toMatchObject({ kind: 'prebuilt', libtorch: { root: moved, source: 'LIBTORCH' } });
  expect(addon.binary).toMatch(/node_modules\/prefix-rl\/prebuilds\/.*prefix_rl\.torch[\d.]+\.\w+\.node$/);
  expect(build.torchVersion).toBe(torch.version);
  expect(readdirSync(join(tmp, 'cache', 'load-tests')).length).toBe(1); // tested once, in a child

  await writeJsonl(join(tmp, 'sft.jsonl'), makeSftRecords(1, 4, { minDepth: 2, maxDepth: 2 }));
  const fixture = join(ROOT, 'fixtures/models/qwen3-tiny');
  const step = spawnSync(
    process.execPath,
    [cli, 'sft', '--data', join(tmp, 'sft.jsonl'), '--model', fixture, '--steps', '1', '--batch-size', '2', '--quiet', '--out', join(tmp, 'run')],
    {
      cwd: app,
      env,
      encoding: 'utf8',
    },
  );
  expect({ status: step.status, stderr: step.status === 0 ? '' : step.stderr }).toEqual({ status: 0, stderr: '' });
  expect(JSON.parse(step.stdout.trim())).toMatchObject({ steps: 1 });

  // A libtorch of another version: the fix list, exit 1, no crash.
  const other = join(tmp, 'libtorch-2.12');
  mkdirSync(join(other, 'share/cmake/Torch'), { recursive: true });
  mkdirSync(join(other, 'include/torch/headeronly'), { recursive: true });
  mkdirSync(join(other, 'lib'));
  writeFileSync(join(other, 'share/cmake/Torch/TorchConfig.cmake'), '');
  writeFileSync(
    join(other, 'include/torch/headeronly/version.h'),
    '#define TORCH_VERSION_MAJOR 2\n#define TORCH_VERSION_MINOR 12\n#define TORCH_VERSION_PATCH 0\n',
  );
  const mismatch = spawnSync(process.execPath, [cli, 'env'], { cwd: app, env: { ...env, LIBTORCH: other }, encoding: 'utf8' });
  expect(mismatch.signal).toBeNull();
  expect(mismatch.status).toBe(1);
  expect(mismatch.stderr).toMatch(/no native binary can be loaded/);
  expect(mismatch.stderr).toMatch(/built for libtorch [\d.]+ \w+, but the libtorch found is 2\.12\.0 cpu \(LIBTORCH/);
  expect(mismatch.stderr).toMatch(/Fixes:[\s\S]*LIBTORCH[\s\S]*scripts\/build-native\.mjs/);
});

test('a Python torch found once is remembered: the loader does not import torch at every start', () => {
  const torch = findLibtorch({ allowDownload: false });
  const calls = join(tmp, 'python-calls');
  const python = join(tmp, 'fake-python');
  writeFileSync(python, `#!/bin/sh\necho call >> ${calls}\necho ${torch.prefix}\n`, { mode: 0o755 });
  const { LIBTORCH: _unset, ...rest } = process.env;
  const env = { ...rest, PYTHON: python, PREFIX_RL_CACHE: join(tmp, 'python-cache') };
  const probe = `import { findLibtorch } from ${JSON.stringify(join(ROOT, 'dist/lib/native/libtorch.js'))}; console.log(JSON.stringify(findLibtorch({ allowDownload: false })));`;
  const found = [1, 2].map(() => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env, encoding: 'utf8' })));
  for (const f of found) expect(f).toMatchObject({ root: torch.root, version: torch.version, source: `python (${python})` });
  expect(readFileSync(calls, 'utf8').trim().split('\n')).toHaveLength(1);
});
