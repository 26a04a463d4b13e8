// The package's own root folder and version, from wherever this module runs (lib/ in source, dist/lib/ compiled).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (or installed package) root: the nearest folder above this module whose package.json is prefix-rl's (in source and in dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = require(join(dir, 'package.json')) as { name?: string };
      if (pkg.name === 'prefix-rl') return dir;
    } catch {
      // not the root yet
    }
    dir = dirname(dir);
  }
  throw new Error('prefix-rl: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
}

/** prefix-rl's version (package.json). */
export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require(join(packageRoot(), 'package.json')) as { version: string }).version;
}
