// Choosing the native binary and loading it, in this order:
//   1. PREFIX_RL_ADDON                a binary of its own (the sanitizer build)
//   2. build/Release/prefix_rl.node   a source build (it finds its libtorch through its RUNPATH)
//   3. prebuilds/<platform>-<arch>/prefix_rl.torch<M.m>.<variant>.node, with its .json: a portable binary (no
//      RUNPATH) for the libtorch minor version and variant (cpu, cuda12, cuda13) that the discovery order of
//      libtorch.ts finds on this machine. Its libraries are loaded first (globally, never unloaded), so the binary's
//      needs are met by name wherever libtorch lives; the pair is load-tested once in a child process (a mismatch
//      must not crash this one), and the pass is remembered in the cache dir.
// When none loads, the error says what was tried and how to fix it. `prefix-rl env` shows the choice and why.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot, packageVersion } from '../util/package.js';
import { cacheDir, findLibtorch, LIBTORCH_HOW_TO, type Libtorch, type LibtorchVariant } from './libtorch.js';

/** What a prebuilt binary was built for: the .json beside it. */
export interface PrebuiltInfo {
  file: string;
  platform: string;
  arch: string;
  /** libtorch major.minor, e.g. "2.13". */
  torch: string;
  variant: LibtorchVariant;
  napi: number;
  distributed: string[];
}

export interface AddonChoice {
  binary: string;
  kind: 'explicit' | 'source-build' | 'prebuilt';
  /** Why this binary. */
  reason: string;
  /** The libtorch a prebuilt binary was loaded with. */
  libtorch?: Pick<Libtorch, 'root' | 'libDir' | 'version' | 'variant' | 'source'>;
  /** The candidates before it, each with why it was passed over. */
  passedOver: string[];
}

/** The prebuilt binaries of this platform, from their .json files. */
export function prebuilts(root = packageRoot()): PrebuiltInfo[] {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json') && name.startsWith('prefix_rl.'))
    .map((name) => ({
      ...(JSON.parse(readFileSync(join(dir, name), 'utf8')) as Omit<PrebuiltInfo, 'file'>),
      file: join(dir, name.replace(/\.json$/, '.node')),
    }))
    .filter((info) => existsSync(info.file));
}

/** libtorch's major.minor: what a prebuilt binary is built for. */
export const torchMinor = (version: string) => version.split('.').slice(0, 2).join('.');

/** A prebuilt binary's file name without its extension (.node, .json), for a libtorch. */
export const prebuiltName = (torch: Pick<Libtorch, 'version' | 'variant'>) => `prefix_rl.torch${torchMinor(torch.version)}.${torch.variant}`;

/** dlopen flags: now, global (the binary's symbols resolve against them), never unloaded. */
const PRELOAD_FLAGS = constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | (process.platform === 'darwin' ? 0x80 : 0x1000);

/**
 * Loads libtorch's libraries from `libDir` into this process, so that a binary without a RUNPATH finds them by
 * name. Node's dlopen refuses a library that is not an addon after loading it; with RTLD_NODELETE it stays loaded.
 */
export function preloadLibtorch(libDir: string): void {
  const ext = process.platform === 'darwin' ? 'dylib' : 'so';
  for (const name of ['libc10', 'libtorch_cpu', 'libtorch', 'libc10_cuda', 'libtorch_cuda']) {
    const path = join(libDir, `${name}.${ext}`);
    if (!existsSync(path)) continue;
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, path, PRELOAD_FLAGS);
    } catch (err) {
      // Loaded, but not an addon: what is expected. Anything else did not load.
      if (!/self-register/.test((err as Error).message)) throw new Error(`cannot load ${path}: ${(err as Error).message}`);
    }
  }
}

/** Whether `binary` loads with the libtorch in `libDir`, tried in a child process (remembered once it passed). */
function loadTest(binary: string, libDir: string): { ok: boolean; detail: string } {
  const stat = statSync(binary);
  const key = createHash('sha256')
    .update(JSON.stringify([binary, stat.size, stat.mtimeMs, libDir, packageVersion()]))
    .digest('hex')
    .slice(0, 16);
  const mark = join(cacheDir(), 'load-tests', `${key}.ok`);
  if (existsSync(mark)) return { ok: true, detail: 'load-tested before' };
  const script = `import { createRequire } from 'node:module';
import { preloadLibtorch } from ${JSON.stringify(pathToFileURL(join(packageRoot(), 'dist/lib/native/loader.js')).href)};
preloadLibtorch(${JSON.stringify(libDir)});
const addon = createRequire(import.meta.url)(${JSON.stringify(binary)});
addon.runtimeInfo(); // libtorch answers, not only loads
process.stdout.write(JSON.stringify(addon.buildInfo()));`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PREFIX_RL_ADDON: '' },
  });
  if (child.status !== 0) {
    const why = child.signal
      ? `crashed (${child.signal})`
      : (child.stderr
          .trim()
          .split('\n')
          .find((l) => /Error/.test(l)) ?? `exit ${child.status}`);
    return { ok: false, detail: why };
  }
  try {
    mkdirSync(join(cacheDir(), 'load-tests'), { recursive: true });
    writeFileSync(mark, child.stdout);
  } catch {
    // an unwritable cache only costs the test next time
  }
  return { ok: true, detail: 'load-tested' };
}

/** The binary this process should load, and why (see the top of this file); throws with the fix list when none fits. */
export function chooseAddon(root = packageRoot()): AddonChoice {
  const passedOver: string[] = [];
  const explicit = process.env.PREFIX_RL_ADDON;
  if (explicit) return { binary: explicit, kind: 'explicit', reason: 'PREFIX_RL_ADDON', passedOver };
  const source = join(root, 'build/Release/prefix_rl.node');
  if (existsSync(source))
    return { binary: source, kind: 'source-build', reason: 'a source build (npm run build:native) takes precedence', passedOver };
  passedOver.push(`${source}: not built`);
  const candidates = prebuilts(root);
  if (candidates.length === 0) passedOver.push(`prebuilds/${process.platform}-${process.arch}: no prebuilt binary for this platform`);
  else {
    let torch: Libtorch | undefined;
    try {
      torch = findLibtorch({ allowDownload: false });
    } catch (err) {
      passedOver.push(
        `the prebuilt binaries (${candidates.map((c) => `libtorch ${c.torch} ${c.variant}`).join(', ')}): ${(err as Error).message.split('\n')[0]}`,
      );
    }
    if (torch) {
      for (const candidate of candidates) {
        const name = candidate.file.slice(root.length + 1);
        if (candidate.torch !== torchMinor(torch.version) || candidate.variant !== torch.variant) {
          passedOver.push(
            `${name}: built for libtorch ${candidate.torch} ${candidate.variant}, but the libtorch found is ${torch.version} ${torch.variant} (${torch.source}, ${torch.root})`,
          );
          continue;
        }
        const test = loadTest(candidate.file, torch.libDir);
        if (!test.ok) {
          passedOver.push(`${name}: does not load with ${torch.libDir}: ${test.detail}`);
          continue;
        }
        return {
          binary: candidate.file,
          kind: 'prebuilt',
          reason: `prebuilt for libtorch ${candidate.torch} ${candidate.variant}, matching ${torch.version} from ${torch.source} (${test.detail})`,
          libtorch: { root: torch.root, libDir: torch.libDir, version: torch.version, variant: torch.variant, source: torch.source },
          passedOver,
        };
      }
    }
  }
  throw new Error(
    [
      'prefix-rl: no native binary can be loaded. Tried:',
      ...passedOver.map((line) => `  - ${line}`),
      'Fixes:',
      "  - point LIBTORCH at a libtorch of a prebuilt version and variant (a torch wheel's torch/ directory or an unpacked libtorch zip), or install that torch with pip;",
      '  - or build from source (a C++17 compiler and CMake ≥ 3.18): node node_modules/prefix-rl/scripts/build-native.mjs (in a checkout: npm run build:native);',
      LIBTORCH_HOW_TO,
    ].join('\n'),
  );
}

/** Loads the chosen binary (a prebuilt one after its libtorch). */
export function loadChosen<T>(choice: AddonChoice): T {
  if (choice.kind === 'prebuilt') preloadLibtorch(choice.libtorch!.libDir);
  return createRequire(import.meta.url)(choice.binary) as T;
}
