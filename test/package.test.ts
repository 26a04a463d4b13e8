// The package as its users import it: `prefix-rl` and its subpaths resolved by Node through package.json "exports"
// (a package may import itself by name), running the compiled dist/ that `npm test` builds first (pretest).
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = process.cwd();
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };

/** Runs `body` as an ES module inside the package folder and returns what it printed as JSON. */
async function inPackage<T>(body: string): Promise<T> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', body], {
    cwd: ROOT,
    env: { ...process.env, PREFIX_RL_NUM_THREADS: '1' },
  });
  return JSON.parse(stdout) as T;
}

test('dist/ is compiled from the current sources (npm test compiles it first)', () => {
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : e.name.endsWith('.ts') ? statSync(join(dir, e.name)).mtimeMs : 0,
      ),
    );
  expect(statSync(join(ROOT, 'dist/lib/index.js')).mtimeMs).toBeGreaterThanOrEqual(newest(join(ROOT, 'lib')));
});

test('every lib/ layer is a subpath export, and every export resolves', async () => {
  const layers = readdirSync(join(ROOT, 'lib'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== 'cli' && readdirSync(join(ROOT, 'lib', e.name)).some((f) => f.endsWith('.ts')))
    .map((e) => `./${e.name}`);
  expect(
    Object.keys(pkg.exports)
      .filter((k) => k !== '.' && k !== './package.json')
      .sort(),
  ).toEqual(layers.sort());
  const specifiers = Object.keys(pkg.exports)
    .filter((k) => k !== './package.json')
    .map((k) => 'prefix-rl' + k.slice(1));
  const counts = await inPackage<Record<string, number>>(
    `const out = {}; for (const s of ${JSON.stringify(specifiers)}) out[s] = Object.keys(await import(s)).length; console.log(JSON.stringify(out));`,
  );
  for (const specifier of specifiers) expect(counts[specifier]).toBeGreaterThan(0);
});

test('the root names what users call, and no internal helper', async () => {
  const names = await inPackage<string[]>(`console.log(JSON.stringify(Object.keys(await import('prefix-rl'))));`);
  for (const name of [
    'Tensor',
    'tidy',
    'ipvrmOffline',
    'distrlLoss',
    'loadModel',
    'initModel',
    'loadTokenizer',
    'loadDataset',
    'verify',
    'VerifierPool',
  ])
    expect(names).toContain(name);
  for (const name of [
    'sampleRollouts',
    'sft',
    'trainRewardModel',
    'trainRl',
    'sampledAccuracy',
    'evaluateStepVerification',
    'evaluateBestOfN',
    'loadRlConfig',
    'runSft',
    'runRm',
    'runRl',
    'renderReport',
  ])
    expect(names).toContain(name);
  // helpers stay behind their subpaths
  for (const name of [
    'scoredMask',
    'Trainee',
    'saveCheckpoint',
    'writeFileAtomic',
    'failpoint',
    'maskedWhiten',
    'deepMerge',
    'keepGroups',
    'roundHalfEven',
    'Rng',
  ])
    expect(names).not.toContain(name);
  expect(names.length).toBeLessThan(120);
});

test('the root API works end to end: tensors, an objective, a model with its tokenizer, a verifier, a config', async () => {
  const result = await inPackage<Record<string, unknown>>(`
    import { Tensor, tidy, liveTensors, tokenLogprobs, loadModel, loadTokenizer, padBatch, verify, resolveRlConfig } from 'prefix-rl';
    import { maskedMean } from 'prefix-rl/algorithms';
    const sum = tidy(() => Tensor.from([[1, 2], [3, 4]], undefined, { dtype: 'float64' }).sum().item());
    const logits = Tensor.from(new Float64Array(8).fill(0), [1, 2, 4], { dtype: 'float64' });
    const tokens = Tensor.from(new BigInt64Array([1n, 3n]), [1, 2, 1]);
    const logprob = (await tokenLogprobs(logits, tokens)).toNumbers()[0];
    const model = await loadModel('fixtures/models/qwen3-tiny');
    const tokenizer = await loadTokenizer('fixtures/models/qwen3-tiny');
    const ids = tokenizer.encode('hello');
    const { inputIds, attentionMask } = padBatch([ids]);
    const shape = (await model.forward(inputIds, attentionMask, { noGrad: true })).shape;
    const [generation] = await model.generate([ids], { maxNewTokens: 3, seed: 1, eosTokenIds: [] });
    model.dispose();
    const verdict = (await verify({ kind: 'math', response: 'so \\\\boxed{1/2}', groundTruth: '0.5' })).status;
    const algorithm = resolveRlConfig({ algorithm: 'distrl' }).algorithm;
    console.log(JSON.stringify({ sum, logprob, shape, vocab: model.config.vocabSize, generated: generation.tokens.length, verdict, algorithm,
      mean: maskedMean([[1, 3]], [[1, 1]]), live: liveTensors() }));
  `);
  expect(result).toMatchObject({ sum: 10, shape: [1, expect.any(Number), result.vocab], generated: 3, verdict: 'pass', algorithm: 'distrl' });
  expect(result.mean).toBeCloseTo(2, 7); // verl's masked mean: Σ / (count + 1e-8)
  expect(result.logprob).toBeCloseTo(-Math.log(4), 12);
  expect(typeof result.live).toBe('number');
});
