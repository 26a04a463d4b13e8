// Soak: memory must stay flat over a long process. 10,000 RL-sized objective calls (the online IPVRM, π_old's
// candidate set, Tok-PPO + Dist-PPO with its backward, the fused head with its backward, in turn) and 1,000
// load → score → dispose cycles of a checkpoint, in one process. Reported: RSS after a warm-up (the first 10 % of
// each phase), at the end, the growth between (goal ≤ 5 %), and liveTensors() at the end (goal 0).
// Run: npm run bench:soak [-- --calls=10000 --cycles=1000]
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadModel, padBatch } from '../lib/model/index.js';
import { environmentReport, releaseBufferCache } from '../lib/native/runtime.js';
import { distrlCandidates, distrlLoss, headLogprobs, ipvrmOnline } from '../lib/ops/objectives.js';
import { liveTensors, Tensor, tidy } from '../lib/tensor/index.js';

const flag = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const calls = flag('calls', 10_000);
const cycles = flag('cycles', 1_000);
const [B, T, V, H] = [8, 64, 32_000, 256]; // 512 response tokens of a 32k vocabulary per call
const rssMiB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

const inputs = tidy(() => ({
  logits: Tensor.randn([B, T, V], 1).mul(2).keep(),
  tokens: Tensor.rand([B, T], 2, { dtype: 'float64' }).mul(V).to('int64').keep(),
  mask: Tensor.ones([B, T]).keep(),
  refLogprobs: Tensor.randn([B, T], 3).sub(3).keep(),
  acc: Tensor.from([1, 0, 1, 0, 1, 1, 0, 0], [B]).keep(),
  advantages: Tensor.randn([B, T], 4).keep(),
  hidden: Tensor.randn([B * T, H], 5).keep(),
  weight: Tensor.randn([V, H], 6)
    .mul(1 / 16)
    .keep(),
}));

/** One objective call, the `i`-th in the rotation; every tensor it makes is freed by tidy. */
async function objectiveCall(i: number): Promise<void> {
  await tidy(async () => {
    const { logits, tokens, mask, refLogprobs, acc, advantages, hidden, weight } = inputs;
    switch (i % 4) {
      case 0: {
        const leaf = logits.detach();
        leaf.requiresGrad = true;
        const { loss } = await ipvrmOnline({ logits: leaf, tokens, refLogprobs, mask, acc, groupSize: 4 });
        await loss.backwardAsync();
        break;
      }
      case 1:
        await distrlCandidates({ oldLogits: logits, tokens, mask, k: 5, minP: 0.01 });
        break;
      case 2: {
        const set = await distrlCandidates({ oldLogits: logits, tokens, mask, k: 5, minP: 0.01 });
        const leaf = logits.detach();
        leaf.requiresGrad = true;
        const scaledCandidateTd = Tensor.zeros(set.oldTopkLogprobs.shape);
        const { loss } = await distrlLoss({ ...set, newLogits: leaf, advantages, scaledCandidateTd, mask, alpha: 0.1 });
        await loss.backwardAsync();
        break;
      }
      default: {
        const [h, w] = [hidden.detach(), weight.detach()];
        h.requiresGrad = true;
        w.requiresGrad = true;
        const logp = await headLogprobs(h, w, tokens.reshape([B * T, 1]));
        await logp.sum().backwardAsync();
      }
    }
  });
}

async function modelCycle(fixture: string, ids: { inputIds: Tensor; attentionMask: Tensor }): Promise<void> {
  const model = await loadModel(fixture);
  try {
    await tidy(async () => (await model.tokenLogprobs(ids.inputIds, ids.attentionMask, { noGrad: true })).sum().item());
  } finally {
    model.dispose();
  }
}

/** Runs `count` steps; RSS after the first 10 % (the warm-up) and at the end. */
async function phase(count: number, step: (i: number) => Promise<void>): Promise<{ warm: number; end: number; seconds: number }> {
  const start = performance.now();
  let warm = 0;
  for (let i = 0; i < count; i++) {
    await step(i);
    if (i + 1 === Math.ceil(count / 10)) warm = settledRss();
  }
  return { warm, end: settledRss(), seconds: (performance.now() - start) / 1000 };
}

/** RSS with garbage collected and the gradient-buffer cache emptied (it holds freed [N, V] buffers by design). */
function settledRss(): number {
  global.gc?.();
  releaseBufferCache();
  return rssMiB();
}

const report = environmentReport();
console.log(`# soak: libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`);
const objectives = await phase(calls, objectiveCall);
const fixture = join(process.cwd(), 'fixtures/models/qwen3-tiny');
const ids = padBatch([
  [1, 5, 9, 3, 7, 2],
  [4, 8, 15, 16],
]);
const models = await phase(cycles, () => modelCycle(fixture, ids));
for (const t of [...Object.values(inputs), ids.inputIds, ids.attentionMask]) t.dispose();
const growth = (p: { warm: number; end: number }) => `${(((p.end - p.warm) / p.warm) * 100).toFixed(1)} %`;
console.log('| phase | count | s | RSS after warm-up MiB | RSS at end MiB | growth |');
console.log('|---|---|---|---|---|---|');
console.log(
  `| objective calls (${B}×${T} tokens, V = ${V}) | ${calls} | ${objectives.seconds.toFixed(0)} | ${objectives.warm.toFixed(0)} | ${objectives.end.toFixed(0)} | ${growth(objectives)} |`,
);
console.log(
  `| load → score → dispose (qwen3-tiny) | ${cycles} | ${models.seconds.toFixed(0)} | ${models.warm.toFixed(0)} | ${models.end.toFixed(0)} | ${growth(models)} |`,
);
console.log(`liveTensors() at the end, every input disposed: ${liveTensors()}`);
