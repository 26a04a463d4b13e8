// Golden tests: every *.json in ../shared/golden (or $PREFIX_RL_GOLDEN_DIR) is checked by its family's checker,
// in float64 at 1e-9 relative and, for the native objectives, again in float32 (1e-5 losses, 1e-4 gradients).
// A file of an unknown family fails, and so does an output key that its checker did not compare.
import { compare, goldenDir, goldenFiles, type FamilyCheck } from './golden/harness.js';
import * as nativeRm from './golden/families/native_rm.js';

const families: Record<string, { check: FamilyCheck; dtypes: ('float64' | 'float32')[] }> = {
  ipvrm_offline: { check: nativeRm.ipvrm_offline, dtypes: ['float64', 'float32'] },
  implicit_prm_ce: { check: nativeRm.implicit_prm_ce, dtypes: ['float64', 'float32'] },
  dpo_rm: { check: nativeRm.dpo_rm, dtypes: ['float64', 'float32'] },
  ipvrm_online: { check: nativeRm.ipvrm_online, dtypes: ['float64', 'float32'] },
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
      await entry.check(
        golden,
        (name, actual, expected, rtol) => {
          checked.add(name);
          const failure = compare(name, actual, expected, rtol ?? (dtype === 'float64' ? 1e-9 : 1e-5), dtype);
          if (failure) failures.push(failure);
        },
        dtype,
      );
      const unchecked = Object.keys(golden.outputs).filter((key) => !checked.has(key));
      expect(unchecked).toEqual([]);
      expect(failures).toEqual([]);
    });
  }
}
