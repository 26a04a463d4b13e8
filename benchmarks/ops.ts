// CPU benchmark of the fused objectives against the naive ATen composition (log_softmax → gather → cumsum …),
// side by side in one process: time (median of 3 runs after one for memory) and peak extra memory (VmHWM above the baseline RSS,
// after resetting the high-water mark through /proc/self/clear_refs). Run: npm run bench:ops [-- --quick | --shape=N,V | --dtype=bfloat16]
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { environmentReport, releaseBufferCache } from '../lib/native/runtime.js';
import type { Tensor } from '../lib/tensor/index.js';
import { distPpoFused, distPpoNaive, ipvrmFused, ipvrmNaive, problem } from './objective-variants.js';

const quick = process.argv.includes('--quick');
const repeats = quick ? 1 : 3;

function rssKiB(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/**
 * Runs `fn` once for its peak memory and `repeats` times for its median time. Each run gets fresh logits from
 * `setup` (a copy, outside the timed and measured region), since in-place variants consume them.
 */
async function measure(setup: () => Tensor, fn: (logits: Tensor) => Promise<void>): Promise<{ ms: number; peakMiB: number }> {
  const times: number[] = [];
  let peakMiB = 0;
  for (let i = 0; i <= repeats; i++) {
    const logits = setup();
    logits.requiresGrad = true;
    // Collect garbage and let N-API finalizers (which run on the event loop) free tensors before the baseline. The
    // memory run starts with an empty buffer cache, so it counts the fused ops' first allocation; the timed runs
    // reuse the buffer, as every step of a training loop after its first does.
    global.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    if (i === 0) releaseBufferCache();
    writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
    const base = rssKiB('VmRSS');
    const start = performance.now();
    await fn(logits);
    if (i === 0) peakMiB = (rssKiB('VmHWM') - base) / 1024;
    else times.push(performance.now() - start);
    logits.dispose();
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], peakMiB };
}

// --shape N,V runs one shape; --quick the smallest; --dtype=bfloat16 bf16 logits (default float32).
const dtype = process.argv.find((a) => a.startsWith('--dtype='))?.slice(8) === 'bfloat16' ? 'bfloat16' : 'float32';
const shapeArg = process.argv.find((a) => a.startsWith('--shape='))?.slice(8);
const shapes: [number, number][] = shapeArg
  ? [shapeArg.split(',').map(Number) as [number, number]]
  : quick
    ? [[512, 32000]]
    : [
        [512, 32000],
        [512, 151936],
        [2048, 32000],
        [2048, 151936],
      ];

const rows: string[] = [];
const report = environmentReport();
console.log(
  `# ops benchmark (${dtype} logits): libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`,
);
console.log('| objective | N | V | fused ms | naive ms | speed-up | fused extra MiB | naive extra MiB | memory ratio |');
console.log('|---|---|---|---|---|---|---|---|---|');
const variants = [
  ['IPVRM fwd+bwd', ipvrmFused(false), ipvrmNaive],
  ['IPVRM fwd+bwd, in-place grad', ipvrmFused(true), ipvrmNaive],
  ['Dist-PPO fwd+bwd', distPpoFused(false), distPpoNaive],
  ['Dist-PPO fwd+bwd, in-place grad', distPpoFused(true), distPpoNaive],
] as const;

// One call of every variant on a small problem first, so that one-time costs (the OpenMP thread pool, libtorch's
// lazy initialisation) do not count as the first measured variant's memory.
{
  const p = problem(1, 256, 1000);
  for (const [, fused, naive] of variants) {
    for (const run of [fused, naive]) {
      const logits = p.logits.clone();
      logits.requiresGrad = true;
      await run(p, logits);
      logits.dispose();
    }
  }
  for (const t of Object.values(p)) t.dispose();
}

for (const [N, V] of shapes) {
  const T = 256;
  const p = problem(N / T, T, V, dtype);
  const fresh = () => p.logits.clone();
  for (const [name, fused, naive] of variants) {
    const f = await measure(fresh, (logits) => fused(p, logits));
    const n = await measure(fresh, (logits) => naive(p, logits));
    const row = `| ${name} | ${N} | ${V} | ${f.ms.toFixed(0)} | ${n.ms.toFixed(0)} | ${(n.ms / f.ms).toFixed(2)}x | ${f.peakMiB.toFixed(0)} | ${n.peakMiB.toFixed(0)} | ${(f.peakMiB / n.peakMiB).toFixed(2)} |`;
    rows.push(row);
    console.log(row);
  }
  for (const t of Object.values(p)) t.dispose();
}
