// The committed fixtures must be exactly what test/fixtures/make-fixtures.ts writes.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFixtures } from './fixtures/make-fixtures.js';

const FIXTURES = fileURLToPath(new URL('../fixtures', import.meta.url));

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

/** The fixture folders make-fixtures.ts owns; other folders under fixtures/ are left alone. */
const OWNED = ['data', 'task-tokenizer'];

test('fixtures/ is up to date (regenerate with UPDATE_FIXTURES=1)', async () => {
  if (process.env.UPDATE_FIXTURES === '1') await writeFixtures(FIXTURES);
  const fresh = await mkdtemp(join(tmpdir(), 'prefix-rl-fixtures-'));
  try {
    await writeFixtures(fresh);
    for (const folder of OWNED) {
      const names = await listFiles(join(fresh, folder));
      expect(await listFiles(join(FIXTURES, folder))).toEqual(names);
      for (const name of names) {
        const path = join(folder, name);
        expect({ path, bytes: await readFile(join(FIXTURES, path)) }).toEqual({ path, bytes: await readFile(join(fresh, path)) });
      }
    }
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
});
