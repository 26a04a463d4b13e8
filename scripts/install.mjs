#!/usr/bin/env node
// `npm install`'s step for the native binary. A packaged install (dist/ shipped) first asks the run-time loader
// (lib/native/loader.ts) for a binary: a prebuilt one that matches the libtorch found here and loads (tested in a
// child process) needs no compiler. Otherwise — a checkout, or no prebuilt fits — node-gyp-build builds from source
// (binding.gyp → scripts/build-native.mjs → cmake-js); if that fails too, what was tried and the fixes are printed.
// npm ≥ 11 skips a dependency's install script unless allowed: the loader then makes the same choice at first use.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const loaderFile = join(root, 'dist/lib/native/loader.js');
let passedOver = [];
if (existsSync(loaderFile)) {
  const { chooseAddon } = await import(pathToFileURL(loaderFile).href);
  try {
    const choice = chooseAddon(root);
    process.stdout.write(`prefix-rl: using ${choice.binary} (${choice.kind}: ${choice.reason})\n`);
    process.exit(0);
  } catch (err) {
    passedOver = [err.message];
  }
}
const nodeGypBuild = join(dirname(createRequire(import.meta.url).resolve('node-gyp-build/package.json')), 'bin.js');
const build = spawnSync(process.execPath, [nodeGypBuild], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) {
  process.stderr.write(
    [
      'prefix-rl: the native binary could not be built from source either (a C++17 compiler, CMake ≥ 3.18 and libtorch are needed).',
      ...passedOver,
    ].join('\n') + '\n',
  );
  process.exit(build.status ?? 1);
}
