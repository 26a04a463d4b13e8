// Model benchmark: prefix-rl's native Qwen3 against transformers' eager PyTorch on the same checkpoint, the same
// libtorch version, thread count and machine, side by side in one run. Rows: training-step tokens/s (forward +
// token cross-entropy + backward + AdamW step) and sampling tokens/s (batched, KV cache, no EOS), in float32 and in
// bf16 (prefix-rl: bf16 compute over float32 master weights; sampling from bf16-stored weights; transformers:
// torch.autocast over its float32 model).
//
//   npm run bench:model [-- --python=/path/to/python --size=small|tiny --quick --dtypes=float32,bfloat16]
//
// The Python side (benchmarks/model_transformers.py) needs torch and transformers: see benchmarks/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, loadModel, padBatch, type TrainingDType } from '../lib/model/index.js';
import { environmentReport } from '../lib/native/runtime.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const quick = process.argv.includes('--quick');
const python = flag('python', process.env.PYTHON ?? 'python3');
const size = flag('size', quick ? 'tiny' : 'small');
const shape = {
  threads: environmentReport().runtime.numThreads,
  trainBatch: 8,
  trainSeq: quick ? 64 : 256,
  genBatch: 8,
  promptLen: 32,
  newTokens: quick ? 32 : 128,
  repeats: quick ? 1 : 5,
};
const script = join(import.meta.dirname, '..', '..', 'benchmarks', 'model_transformers.py');

interface TransformersRun {
  torch: string;
  transformers: string;
  attention: string;
  train_step_s: number[];
  sample_s: number[];
}

function runPython<T>(args: string[]): T {
  const result = spawnSync(python, [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`${python} ${script} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`})`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

/** Seconds of each of `repeats` runs after one warm-up. */
async function timedRuns(fn: () => Promise<void>): Promise<number[]> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < shape.repeats; i++) {
    const start = performance.now();
    await fn();
    times.push((performance.now() - start) / 1000);
  }
  return times;
}

const median = (times: number[]) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];

/** Uniform random token ids in [3, vocab) as rows, from a fixed seed. */
function randomTokens(rows: number, length: number, vocab: number, seed: number): number[][] {
  return tidy(
    () =>
      Tensor.rand([rows, length], seed, { dtype: 'float64' })
        .mul(vocab - 3)
        .add(3)
        .to('int64')
        .toNested() as number[][],
  );
}

async function benchPrefixRl(dir: string, dtype: TrainingDType) {
  const model = await loadModel(dir, { dtype, masterWeights: dtype !== 'float32' });
  const vocab = model.config.vocabSize;
  const parameters = model.parameters();
  for (const parameter of parameters.values()) parameter.requiresGrad = true;
  const optimizer = new AdamW(parameters, { lr: 1e-4 });
  const { inputIds } = padBatch(randomTokens(shape.trainBatch, shape.trainSeq, vocab, 1));
  const trainStep = () =>
    tidy(async () => {
      const logprobs = await model.tokenLogprobs(inputIds);
      await logprobs.mean().neg().backwardAsync();
      await optimizer.step();
      await optimizer.zeroGrad();
    });
  const trainS = await timedRuns(trainStep);

  inputIds.dispose();
  for (const parameter of parameters.values()) parameter.dispose();
  model.dispose();
  // Sampling as an RL rollout samples: a frozen copy, stored in the dtype.
  const sampler = await loadModel(dir, { dtype });
  const prompts = randomTokens(shape.genBatch, shape.promptLen, vocab, 2);
  const sampleS = await timedRuns(async () => {
    const out = await sampler.generate(prompts, { maxNewTokens: shape.newTokens, temperature: 1, eosTokenIds: [], seed: 3 });
    if (out.some((g) => g.tokens.length !== shape.newTokens)) throw new Error('a row stopped early');
  });
  sampler.dispose();
  return { trainS, sampleS };
}

const dir = join(tmpdir(), `prefix-rl-bench-qwen3-${size}`);
if (!existsSync(join(dir, 'config.json'))) console.log(`made ${JSON.stringify(runPython(['make', dir, '--size', size]))}`);
const dtypes = flag('dtypes', 'float32,bfloat16').split(',') as TrainingDType[];
const runs = [];
for (const dtype of dtypes) {
  const ours = await benchPrefixRl(dir, dtype);
  const theirs = runPython<TransformersRun>([
    'bench',
    dir,
    ...Object.entries(shape).flatMap(([key, value]) => [`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(value)]),
    '--dtype',
    dtype,
  ]);
  runs.push({ dtype, ours, theirs });
}
const theirs = runs[0].theirs;

const report = environmentReport();
const tokens = { train: shape.trainBatch * shape.trainSeq, sample: shape.genBatch * shape.newTokens };
/** Median tokens/s, and the range over the repeats. */
const rate = (count: number, times: number[]) => {
  const perSecond = times.map((t) => count / t).sort((a, b) => a - b);
  return `${(count / median(times)).toFixed(0)} (${perSecond[0].toFixed(0)}–${perSecond.at(-1)!.toFixed(0)})`;
};
console.log(
  `# model benchmark: Qwen3 ${size} (${dir}), ${dtypes.join(' and ')}, libtorch ${report.build.torchVersion} / torch ${theirs.torch}, ` +
    `transformers ${theirs.transformers} (${theirs.attention} attention), ${shape.threads} threads, ${cpus()[0]?.model ?? 'cpu'}`,
);
console.log(
  `# train: batch ${shape.trainBatch} × ${shape.trainSeq} tokens; sample: ${shape.genBatch} prompts × ${shape.promptLen} tokens, ` +
    `${shape.newTokens} new tokens each; tokens/s: median of ${shape.repeats} runs (range)`,
);
console.log('| row | dtype | prefix-rl tokens/s | transformers tokens/s | speed-up (medians) |');
console.log('|---|---|---|---|---|');
for (const { dtype, ours, theirs } of runs) {
  for (const [row, key, ourTimes, theirTimes] of [
    ['training step (fwd + CE + bwd + AdamW)', 'train', ours.trainS, theirs.train_step_s],
    ['sampling (KV cache)', 'sample', ours.sampleS, theirs.sample_s],
  ] as const) {
    const count = tokens[key];
    console.log(
      `| ${row} | ${dtype} | ${rate(count, ourTimes)} | ${rate(count, theirTimes)} | ${(median(theirTimes) / median(ourTimes)).toFixed(2)}x |`,
    );
  }
}
