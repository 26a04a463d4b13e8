// The fused LM head against the present path and the naive one, side by side in one process on this CPU, from hidden
// states [N, H] and a head [V, H], forward + backward to hidden and weight, for the two objectives' shapes:
//   IPVRM:  the sampled token's log-prob per row (K = 1)
//   DistRL: log-probs at π_old's K = 5 candidates per row plus the token entropy (the RL step's metric)
// and the variants
//   fused head:   headLogprobs / headLogprobsAndEntropy (vocabulary chunks; no [N, V] logits in either direction)
//   present path: linear → the fused ops (tokenLogprobs, tokenEntropy on the detached [N, V] logits)
//   naive:        linear → log_softmax → gather (and softmax → entropy), autograd
// Time: median of `repeats` runs; then one more measures memory: peak RSS above the pre-run RSS (VmHWM reset
// through /proc/self/clear_refs), after the allocator has seen the variant's sizes (as in a training loop). Run: npm run bench:head [-- --shapes=1024,4096 --dtypes=float32,bfloat16 --repeats=3]
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { environmentReport, releaseBufferCache } from '../lib/native/runtime.js';
import { headLogprobs, headLogprobsAndEntropy, tokenEntropy, tokenLogprobs } from '../lib/ops/objectives.js';
import { Tensor, tidy, type DType } from '../lib/tensor/index.js';

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const rowCounts = flag('shapes', '1024,4096').split(',').map(Number);
const dtypes = flag('dtypes', 'float32,bfloat16').split(',') as DType[];
const [H, V] = flag('head', '1024,151936').split(',').map(Number);
const repeats = Number(flag('repeats', '3'));
const CANDIDATES = 5;

const rssKiB = (field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);

interface Inputs {
  hidden: Tensor;
  weight: Tensor;
  index: Tensor;
}
type Variant = (h: Tensor, w: Tensor, index: Tensor) => Promise<Tensor>;

const logits = (h: Tensor, w: Tensor) => h.matmul(w.transpose(0, 1));
const naiveLogprobs = (z: Tensor, index: Tensor) => z.to('float32').logSoftmax(-1).gather(-1, index);
const objectives: Record<string, { k: number; variants: [string, Variant][] }> = {
  IPVRM: {
    k: 1,
    variants: [
      ['fused head', (h, w, index) => headLogprobs(h, w, index)],
      ['present path', (h, w, index) => tokenLogprobs(logits(h, w), index)],
      ['naive', async (h, w, index) => naiveLogprobs(logits(h, w), index)],
    ],
  },
  DistRL: {
    k: CANDIDATES,
    variants: [
      [
        'fused head',
        async (h, w, index) => {
          const { logprobs, entropy } = await headLogprobsAndEntropy(h, w, index);
          return logprobs.sum().add(entropy.detach().sum());
        },
      ],
      [
        'present path',
        async (h, w, index) => {
          const z = logits(h, w);
          const entropy = await tokenEntropy(z.detach());
          return (await tokenLogprobs(z, index)).sum().add(entropy.sum());
        },
      ],
      [
        'naive',
        async (h, w, index) => {
          const logp = logits(h, w).to('float32').logSoftmax(-1);
          const entropy = logp.detach().exp().mul(logp.detach()).sum(-1).neg();
          return logp.gather(-1, index).sum().add(entropy.sum());
        },
      ],
    ],
  },
};

async function measure(inputs: Inputs, variant: Variant): Promise<{ ms: number; peakMiB: number }> {
  const times: number[] = [];
  let peakMiB = 0;
  for (let i = 0; i <= repeats; i++) {
    const [h, w] = [inputs.hidden.detach(), inputs.weight.detach()];
    h.requiresGrad = true;
    w.requiresGrad = true;
    global.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    const memoryRun = i === repeats; // last: the allocator has seen this variant's sizes, as in a training loop
    if (memoryRun) releaseBufferCache();
    writeFileSync('/proc/self/clear_refs', '5');
    const base = rssKiB('VmRSS');
    const start = performance.now();
    await tidy(async () => {
      const out = await variant(h, w, inputs.index);
      await out.sum().backwardAsync();
    });
    if (memoryRun) peakMiB = (rssKiB('VmHWM') - base) / 1024;
    else times.push(performance.now() - start);
    for (const t of [h, w]) t.dispose();
  }
  return { ms: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], peakMiB };
}

/** One-time costs (thread pools, GEMM kernels and scratch, allocator arenas) kept out of the measurements: every variant, small. */
const warmed = new Set<DType>();
async function warmUp(weight: Tensor, dtype: DType): Promise<void> {
  if (warmed.has(dtype)) return;
  warmed.add(dtype);
  const hidden = tidy(() => Tensor.randn([64, H], 4).to(dtype).keep());
  const index = Tensor.zeros([64, CANDIDATES], { dtype: 'int64' });
  for (const { variants } of Object.values(objectives)) for (const [, variant] of variants) await measure({ hidden, weight, index }, variant);
  for (const t of [hidden, index]) t.dispose();
}

const report = environmentReport();
console.log(
  `# head benchmark: H = ${H}, V = ${V}, libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`,
);
console.log(`# fwd + bwd to hidden and weight; median of ${repeats}, then a memory run; chunk 4096`);
console.log('| objective | N | dtype | variant | ms | vs present | vs naive | peak extra MiB | vs present | beyond ∂W MiB | vs present |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const N of rowCounts) {
  for (const dtype of dtypes) {
    const hidden = tidy(() => Tensor.randn([N, H], 1).to(dtype).keep());
    const weight = tidy(() =>
      Tensor.randn([V, H], 2)
        .mul(1 / Math.sqrt(H))
        .to(dtype)
        .keep(),
    );
    await warmUp(weight, dtype);
    for (const [objective, { k, variants }] of Object.entries(objectives)) {
      const index = tidy(() => Tensor.rand([N, k], 3, { dtype: 'float64' }).mul(V).to('int64').keep());
      const results = [];
      for (const [name, variant] of variants) results.push({ name, ...(await measure({ hidden, weight, index }, variant)) });
      const [present, naive] = [results[1], results[2]];
      // Every variant holds the head weight's gradient, one [V, H] in the weight's dtype: what is left is the head's own.
      const gradMiB = (V * H * (dtype === 'float32' ? 4 : 2)) / 2 ** 20;
      const beyond = (r: { peakMiB: number }) => Math.max(0, r.peakMiB - gradMiB);
      for (const r of results) {
        console.log(
          `| ${objective} | ${N} | ${dtype} | ${r.name} | ${r.ms.toFixed(0)} | ${(r.ms / present.ms).toFixed(2)}× | ${(r.ms / naive.ms).toFixed(2)}× | ${r.peakMiB.toFixed(0)} | ${(r.peakMiB / present.peakMiB).toFixed(3)} | ${beyond(r).toFixed(0)} | ${(beyond(r) / beyond(present)).toFixed(3)} |`,
        );
      }
      index.dispose();
    }
    hidden.dispose();
    weight.dispose();
  }
}
