#!/usr/bin/env node
// Finds the libtorch the addon builds against and prints it (--json: {root, prefix, libDir, version, cuda, variant,
// source}). The discovery itself is lib/native/libtorch.ts, which the run-time loader shares; in a checkout
// without a compiled dist/ (a fresh clone's first install) it is compiled first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist/lib/native/libtorch.js');

async function discovery() {
  if (!existsSync(compiled)) {
    const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin/tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
    if (result.status !== 0 || !existsSync(compiled)) throw new Error('find-libtorch: compiling lib/native/libtorch.ts failed');
  }
  return import(pathToFileURL(compiled).href);
}

/** The libtorch to build against (pip may download the wheel). */
export async function findLibtorch() {
  return (await discovery()).findLibtorch({ allowDownload: true });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const found = await findLibtorch();
    if (process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify(found) + '\n');
    } else {
      process.stdout.write(`libtorch ${found.version} (${found.variant}) from ${found.source}\n  CMAKE_PREFIX_PATH=${found.prefix}\n`);
      if (!found.version.startsWith('2.')) process.stdout.write('  warning: libtorch 2.x is required for every feature; this one is older.\n');
    }
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
