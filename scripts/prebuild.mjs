#!/usr/bin/env node
// `npm run prebuild`: builds the portable addon (no RUNPATH; scripts/build-native.mjs --portable) against the
// libtorch found here and packs it where the loader (lib/native/loader.ts) looks:
//   prebuilds/<platform>-<arch>/prefix_rl.torch<major.minor>.<variant>.node   (variant: cpu, cuda12, cuda13)
//   prebuilds/<platform>-<arch>/prefix_rl.torch<major.minor>.<variant>.json   (what it was built for)
// --no-build packs an existing build-prebuild/prefix_rl.node. The CI workflow (.github/workflows/prebuild.yml) runs
// this on each platform and variant; the package ships every binary, and no libtorch.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build-prebuild/prefix_rl.node');
if (!process.argv.includes('--no-build')) {
  const result = spawnSync(process.execPath, [join(root, 'scripts/build-native.mjs'), '--portable'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
if (!existsSync(built)) {
  process.stderr.write('prebuild: build-prebuild/prefix_rl.node is missing; run without --no-build\n');
  process.exit(1);
}
const torch = await findLibtorch();
// The loader's own preload, then the binary: it must load with this libtorch before it is packed.
const { preloadLibtorch, prebuiltName, torchMinor } = await import(join(root, 'dist/lib/native/loader.js'));
preloadLibtorch(torch.libDir);
const info = createRequire(import.meta.url)(built).buildInfo();
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const name = prebuiltName(torch);
mkdirSync(dir, { recursive: true });
const manifest = {
  platform: process.platform,
  arch: process.arch,
  torch: torchMinor(torch.version),
  torchVersion: info.torchVersion,
  variant: torch.variant,
  napi: info.napiVersion,
  distributed: info.distributedBackends,
  cudaKernels: info.cudaKernels,
  compiler: info.compiler,
};
// The binary first, then its .json: the loader only considers a binary with a .json.
copyFileSync(built, join(dir, `${name}.node.tmp`));
renameSync(join(dir, `${name}.node.tmp`), join(dir, `${name}.node`));
writeFileSync(join(dir, `${name}.json`), JSON.stringify(manifest, null, 2) + '\n');
process.stdout.write(`prebuild: wrote prebuilds/${process.platform}-${process.arch}/${name}.node (libtorch ${info.torchVersion} ${torch.variant})\n`);
