// Golden tests: every *.json in test/golden/data (the reference code's vectors; $PREFIX_RL_GOLDEN_DIR points at another
// folder of the same format) is checked by its family's checker, in float64 at 1e-9 relative and, for the native
// objectives, again in float32 (1e-5 losses, 1e-4 gradients).
// A file of an unknown family fails, and so does an output key that its checker did not compare.
import { compare, goldenDir, goldenFiles, type FamilyCheck } from './golden/harness.js';
import * as nativeDistrl from './golden/families/native_distrl.js';
import * as nativeRm from './golden/families/native_rm.js';
import * as ts from './golden/families/ts_families.js';

// Each family lists its checkers (their compared keys together must cover every output) and the dtypes to run.
const both: ('float64' | 'float32')[] = ['float64', 'float32'];
const families: Record<string, { checks: FamilyCheck[]; dtypes: ('float64' | 'float32')[] }> = {
  ipvrm_offline: { checks: [nativeRm.ipvrm_offline], dtypes: both },
  implicit_prm_ce: { checks: [nativeRm.implicit_prm_ce], dtypes: both },
  dpo_rm: { checks: [nativeRm.dpo_rm], dtypes: both },
  ipvrm_online: { checks: [nativeRm.ipvrm_online], dtypes: both },
  distrl: { checks: [nativeDistrl.distrl, ts.distrlAdvantageFamily], dtypes: both },
  grpo: { checks: [ts.grpoFamily], dtypes: ['float64'] },
  prime: { checks: [ts.primeFamily], dtypes: ['float64'] },
  processbench: { checks: [ts.processbenchFamily], dtypes: ['float64'] },
  bon: { checks: [ts.bonFamily], dtypes: ['float64'] },
};

const files = goldenFiles();

test(`golden directory ${goldenDir()} has cases`, () => {
  expect(files.length).toBeGreaterThan(0);
});

for (const { file, family, golden } of files) {
  const entry = families[family];
  if (!entry) {
    test(`${file}: family '${family}' has a checker`, () => {
      throw new Error(`unknown golden family '${family}' (${file}); known: ${Object.keys(families).join(', ')}`);
    });
    continue;
  }
  for (const dtype of entry.dtypes) {
    test(`${file} (${dtype})`, async () => {
      const failures: string[] = [];
      const checked = new Set<string>();
      for (const check of entry.checks) {
        await check(
          golden,
          (name, actual, expected, rtol) => {
            checked.add(name);
            const failure = compare(name, actual, expected, rtol ?? (dtype === 'float64' ? 1e-9 : 1e-5), dtype);
            if (failure) failures.push(failure);
          },
          dtype,
        );
      }
      const unchecked = Object.keys(golden.outputs).filter((key) => !checked.has(key));
      expect(failures).toEqual([]);
      expect(unchecked).toEqual([]);
    });
  }
}
