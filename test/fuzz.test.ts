// The short fuzzing run (scripts/fuzz.sh): libFuzzer with AddressSanitizer and UBSan over the native JSON reader
// and safetensors header check, seeded from the corpus and the fixtures, for 30 s. Needs clang with libFuzzer (CI
// installs it); elsewhere the test is skipped, visibly. The long run (≥ 10^6 executions) is `RUNS=1000000
// scripts/fuzz.sh`, recorded in benchmarks/RESULTS.md.
import { execFileSync, spawnSync } from 'node:child_process';

const clang = ['clang++', 'clang++-14'].find((cxx) => spawnSync('sh', ['-c', `command -v ${cxx}`]).status === 0);
const run = clang ? test : test.skip;

run(
  'the parsers survive 30 s of fuzzing with no sanitizer finding',
  () => {
    const out = execFileSync('bash', ['scripts/fuzz.sh', '30'], { encoding: 'utf8', env: { ...process.env, CXX: clang } });
    expect(out).toMatch(/fuzz: no finding/);
    const executions = Number(/stat::number_of_executed_units: (\d+)/.exec(out)?.[1] ?? 0);
    expect(executions).toBeGreaterThan(1000);
  },
  180_000,
);
