#!/usr/bin/env node
// Packs the built addon as a prebuilt binary where node-gyp-build looks for one:
// prebuilds/<platform>-<arch>/prefix_rl.napi.node, with a JSON note of the libtorch it is linked against. A
// prebuilt binary only loads next to that libtorch (its RUNPATH), which `prefix-rl env` reports.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build/Release/prefix_rl.node');
if (!existsSync(built)) {
  process.stderr.write('prebuild: build/Release/prefix_rl.node is missing; run `npm run build:native` first\n');
  process.exit(1);
}
const target = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(target, { recursive: true });
copyFileSync(built, join(target, 'prefix_rl.napi.node'));
const info = createRequire(import.meta.url)(built).buildInfo();
writeFileSync(
  join(target, 'libtorch.json'),
  JSON.stringify({ torchVersion: info.torchVersion, torchLibDir: info.torchLibDir, cudaKernels: info.cudaKernels }, null, 2) + '\n',
);
process.stdout.write(`prebuild: wrote ${target}/prefix_rl.napi.node (libtorch ${info.torchVersion} at ${info.torchLibDir})\n`);
