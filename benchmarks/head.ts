// The fused LM head against the present path and the naive one, side by side in one process on this CPU, from hidden
// states [N, H] and a head [V, H], forward + backward to hidden and weight, for the two objectives' shapes:
//   IPVRM:  the sampled token's log-prob per row (K = 1)
//   DistRL: log-probs at π_old's K = 5 candidates per row plus the token entropy (the RL step's metric)
//   IPVRM + head LoRA: the IPVRM shape with a rank-128 LoRA on the frozen head (the paper's RL rank): gradients to
//           hidden and the adapter's A and B, not W
//   IPVRM frozen head / DistRL frozen head: a LoRA actor's head (adapters elsewhere): gradients to hidden only
// and the variants
//   fused head:   headLogprobs / headLogprobsAndEntropy (vocabulary chunks; no [N, V] logits in either direction;
//                 a frozen head's backward from the forward's expectations)
//   fused head, recompute: the same with PREFIX_RL_HEAD_RECOMPUTE=1 (a frozen head's backward recomputes the logits)
//   present path: linear → the fused ops (tokenLogprobs, tokenEntropy on the detached [N, V] logits)
//   naive:        linear → log_softmax → gather (and softmax → entropy), autograd
// Time: median of `repeats` runs; then one more measures memory: peak RSS above the pre-run RSS (VmHWM reset
// through /proc/self/clear_refs), after the allocator has seen the variant's sizes (as in a training loop). Run:
//   npm run bench:head [-- --shapes=1024,4096 --dtypes=float32,bfloat16 --repeats=3 --objectives=IPVRM,DistRL,'IPVRM + head LoRA',...]
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
const [LORA_RANK, LORA_SCALE] = [128, 1]; // the paper's RL adapter: rank 128, alpha 128

const rssKiB = (field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);

interface Inputs {
  hidden: Tensor;
  weight: Tensor;
  index: Tensor;
}
/** A LoRA on the head: A [r, H], B [V, r]. */
interface Lora {
  a: Tensor;
  b: Tensor;
}
type Variant = (h: Tensor, w: Tensor, index: Tensor, lora: Lora) => Promise<Tensor>;
/** A variant's name, its function, and the environment it runs under. */
type Named = [string, Variant, Record<string, string>?];

const logits = (h: Tensor, w: Tensor) => h.matmul(w.transpose(0, 1));
const loraHidden = (h: Tensor, { a }: Lora) => h.matmul(a.transpose(0, 1)).mul(LORA_SCALE);
const loraLogits = (h: Tensor, w: Tensor, lora: Lora) => logits(h, w).add(loraHidden(h, lora).matmul(lora.b.transpose(0, 1)));
const naiveLogprobs = (z: Tensor, index: Tensor) => z.to('float32').logSoftmax(-1).gather(-1, index);
const ipvrm: Named[] = [
  ['fused head', (h, w, index) => headLogprobs(h, w, index)],
  ['present path', (h, w, index) => tokenLogprobs(logits(h, w), index)],
  ['naive', async (h, w, index) => naiveLogprobs(logits(h, w), index)],
];
const distrlFused: Variant = async (h, w, index) => {
  const { logprobs, entropy } = await headLogprobsAndEntropy(h, w, index, { entropyGradient: false });
  return logprobs.sum().add(entropy.detach().sum());
};
const distrl: Named[] = [
  ['fused head', distrlFused],
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
];
const recompute = { PREFIX_RL_HEAD_RECOMPUTE: '1' };
// The variants run in this order; the second is the present path, the third the naive one. `frozen`: the head's
// weight takes no gradient (a LoRA actor's).
const objectives: Record<string, { k: number; lora?: true; frozen?: true; variants: Named[] }> = {
  IPVRM: { k: 1, variants: ipvrm },
  DistRL: { k: CANDIDATES, variants: distrl },
  'IPVRM + head LoRA': {
    k: 1,
    lora: true,
    variants: [
      ['fused head', (h, w, index, lora) => headLogprobs(h, w, index, { lora: { hidden: loraHidden(h, lora), weight: lora.b } })],
      ['present path', (h, w, index, lora) => tokenLogprobs(loraLogits(h, w, lora), index)],
      ['naive', async (h, w, index, lora) => naiveLogprobs(loraLogits(h, w, lora), index)],
    ],
  },
  'IPVRM frozen head': { k: 1, frozen: true, variants: [...ipvrm, ['fused head, recompute', ipvrm[0][1], recompute]] },
  'DistRL frozen head': { k: CANDIDATES, frozen: true, variants: [...distrl, ['fused head, recompute', distrlFused, recompute]] },
};
const chosen = flag('objectives', Object.keys(objectives).join(',')).split(',');

/** The adapter's factors for a head of `weight`'s dtype (B ≠ 0, as after some training). */
function makeLora(weight: Tensor): Lora {
  return tidy(() => ({
    a: Tensor.randn([LORA_RANK, H], 5)
      .mul(1 / Math.sqrt(H))
      .to(weight.dtype)
      .keep(),
    b: Tensor.randn([V, LORA_RANK], 6).mul(0.01).to(weight.dtype).keep(),
  }));
}

async function measure(inputs: Inputs, variant: Variant, lora?: Lora, frozen?: boolean): Promise<{ ms: number; peakMiB: number }> {
  const times: number[] = [];
  let peakMiB = 0;
  for (let i = 0; i <= repeats; i++) {
    const [h, w] = [inputs.hidden.detach(), inputs.weight.detach()];
    // With an adapter the head's weight is frozen (a LoRA actor): the gradients go to A and B.
    const factors = lora && { a: lora.a.detach(), b: lora.b.detach() };
    for (const t of [h, ...(factors ? [factors.a, factors.b] : frozen ? [] : [w])]) t.requiresGrad = true;
    global.gc?.();
    await new Promise((resolve) => setImmediate(resolve));
    const memoryRun = i === repeats; // last: the allocator has seen this variant's sizes, as in a training loop
    if (memoryRun) releaseBufferCache();
    writeFileSync('/proc/self/clear_refs', '5');
    const base = rssKiB('VmRSS');
    const start = performance.now();
    await tidy(async () => {
      const out = await variant(h, w, inputs.index, factors ?? (lora as never));
      await out.sum().backwardAsync();
    });
    if (memoryRun) peakMiB = (rssKiB('VmHWM') - base) / 1024;
    else times.push(performance.now() - start);
    for (const t of [h, w, ...(factors ? [factors.a, factors.b] : [])]) t.dispose();
  }
  return { ms: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], peakMiB };
}

/** Runs `fn` with `env` set in this process's environment (which the addon reads), then unset. */
async function withEnv<T>(env: Record<string, string> | undefined, fn: () => Promise<T>): Promise<T> {
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const name of Object.keys(env ?? {})) delete process.env[name];
  }
}

/** One-time costs (thread pools, GEMM kernels and scratch, allocator arenas) kept out of the measurements: every variant, small. */
const warmed = new Set<DType>();
async function warmUp(weight: Tensor, dtype: DType): Promise<void> {
  if (warmed.has(dtype)) return;
  warmed.add(dtype);
  const hidden = tidy(() => Tensor.randn([64, H], 4).to(dtype).keep());
  const index = Tensor.zeros([64, CANDIDATES], { dtype: 'int64' });
  const lora = makeLora(weight);
  for (const name of chosen) {
    const { variants, lora: withLora, frozen } = objectives[name];
    for (const [, variant, env] of variants) {
      await withEnv(env, () => measure({ hidden, weight, index: withLora ? index.slice(1, 0, 1) : index }, variant, withLora && lora, frozen));
    }
  }
  for (const t of [hidden, index, lora.a, lora.b]) t.dispose();
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
    const lora = makeLora(weight);
    for (const objective of chosen) {
      const { k, variants, lora: withLora, frozen } = objectives[objective];
      const index = tidy(() => Tensor.rand([N, k], 3, { dtype: 'float64' }).mul(V).to('int64').keep());
      const results = [];
      for (const [name, variant, env] of variants) {
        results.push({ name, ...(await withEnv(env, () => measure({ hidden, weight, index }, variant, withLora && lora, frozen))) });
      }
      const [present, naive] = [results[1], results[2]];
      // Every variant holds the gradient of the head's trained weight in the weight's dtype: W [V, H], or B [V, r] with
      // an adapter. What is left is the head's own.
      const gradMiB = frozen ? 0 : (V * (withLora ? LORA_RANK : H) * (dtype === 'float32' ? 4 : 2)) / 2 ** 20;
      const beyond = (r: { peakMiB: number }) => Math.max(0, r.peakMiB - gradMiB);
      for (const r of results) {
        console.log(
          `| ${objective} | ${N} | ${dtype} | ${r.name} | ${r.ms.toFixed(0)} | ${(r.ms / present.ms).toFixed(2)}× | ${(r.ms / naive.ms).toFixed(2)}× | ${r.peakMiB.toFixed(0)} | ${(r.peakMiB / present.peakMiB).toFixed(3)} | ${beyond(r).toFixed(0)} | ${(beyond(r) / beyond(present)).toFixed(3)} |`,
        );
      }
      index.dispose();
    }
    for (const t of [hidden, weight, lora.a, lora.b]) t.dispose();
  }
}
