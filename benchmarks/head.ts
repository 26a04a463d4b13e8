// The fused LM head against the present path and the naive one, side by side in one process on this CPU: token
// log-probs from hidden states [N, H] and a head [V, H], forward + backward to hidden and weight.
//   fused head:   headLogprobs (vocabulary chunks; no [N, V] logits in either direction)
//   present path: linear → the fused gather (tokenLogprobs on the [N, V] logits)
//   naive:        linear → log_softmax → gather, autograd
// Time: median of 3 runs after one that measures memory; memory: peak RSS above the pre-run RSS (VmHWM reset
// through /proc/self/clear_refs). Run: npm run bench:head [-- --shape=N,H,V --dtype=bfloat16]
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { environmentReport, releaseBufferCache } from '../lib/native/runtime.js';
import { headLogprobs, tokenLogprobs } from '../lib/ops/objectives.js';
import { Tensor, tidy } from '../lib/tensor/index.js';

const [N, H, V] = (process.argv.find((a) => a.startsWith('--shape='))?.slice(8) ?? '1024,1024,151936').split(',').map(Number);
const dtype = process.argv.find((a) => a.startsWith('--dtype='))?.slice(8) === 'bfloat16' ? 'bfloat16' : 'float32';
const repeats = 3;

const rssKiB = (field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);

const hidden = tidy(() => Tensor.randn([N, H], 1).to(dtype).keep());
const weight = tidy(() =>
  Tensor.randn([V, H], 2)
    .mul(1 / Math.sqrt(H))
    .to(dtype)
    .keep(),
);
const index = tidy(() => Tensor.rand([N, 1], 3, { dtype: 'float64' }).mul(V).to('int64').keep());

type Variant = (h: Tensor, w: Tensor) => Promise<Tensor>;
const variants: [string, Variant][] = [
  ['fused head', (h, w) => headLogprobs(h, w, index)],
  ['present path (linear → fused gather)', async (h, w) => tokenLogprobs(h.matmul(w.transpose(0, 1)), index)],
  ['naive (linear → log_softmax → gather)', async (h, w) => h.matmul(w.transpose(0, 1)).to('float32').logSoftmax(-1).gather(-1, index)],
];

async function measure(variant: Variant): Promise<{ ms: number; peakMiB: number }> {
  const times: number[] = [];
  let peakMiB = 0;
  for (let i = 0; i <= repeats; i++) {
    const [h, w] = [hidden.detach(), weight.detach()];
    h.requiresGrad = true;
    w.requiresGrad = true;
    global.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    if (i === 0) releaseBufferCache();
    writeFileSync('/proc/self/clear_refs', '5');
    const base = rssKiB('VmRSS');
    const start = performance.now();
    await tidy(async () => {
      const logp = await variant(h, w);
      await logp.sum().backwardAsync();
    });
    if (i === 0) peakMiB = (rssKiB('VmHWM') - base) / 1024;
    else times.push(performance.now() - start);
    for (const t of [h, w]) t.dispose();
  }
  return { ms: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], peakMiB };
}

const report = environmentReport();
console.log(
  `# head benchmark: N = ${N}, H = ${H}, V = ${V}, ${dtype}, libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`,
);
console.log(`# one [N, V] float32 = ${((N * V * 4) / 2 ** 20).toFixed(0)} MiB; fwd + bwd to hidden and weight; median of ${repeats}`);
console.log('| variant | ms | vs present | peak extra MiB | vs present |');
console.log('|---|---|---|---|---|');
const results = [];
for (const [name, variant] of variants) results.push({ name, ...(await measure(variant)) });
const present = results[1];
for (const r of results) {
  console.log(
    `| ${r.name} | ${r.ms.toFixed(0)} | ${(r.ms / present.ms).toFixed(2)}× | ${r.peakMiB.toFixed(0)} | ${(r.peakMiB / present.peakMiB).toFixed(3)} |`,
  );
}
