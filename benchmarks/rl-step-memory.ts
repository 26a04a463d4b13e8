// Peak memory of one DistRL step (policy + online IPVRM, π_ref = π_old) of a Qwen3-0.6B-shaped random model on this
// CPU, through the fused LM head and through the logits path, each in its own process so the peaks do not mix.
// The shape is Qwen3-0.6B's (hidden 1024, 16 heads of 128, 8 KV heads, SwiGLU 3072, V = 151,936, tied head) with
// fewer layers (default 4 of its 28: two trained models with AdamW at 28 layers need ~19 GiB before any
// activation, more than this machine leaves); the head, whose logits the fused path avoids, is the full one.
// Reported: peak RSS during the step (rollouts, π_old, the RM update and scoring, the policy update) above the RSS
// with both models and the tokenizer loaded, and the step's time. With --lora=R the actor trains a rank-R adapter on
// its projections (the paper's RL setting, alpha = R; the head frozen) and a third row runs the fused head with
// PREFIX_RL_HEAD_RECOMPUTE=1 (a frozen head's backward recomputing the logits instead of the forward's expectations).
// Run: npm run bench:rl-memory [-- --layers=4 --prompts=4 --samples=4 --tokens=128 --lora=128]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRlConfig } from '../lib/config/rl.js';
import { initModel } from '../lib/model/index.js';
import { environmentReport } from '../lib/native/runtime.js';
import { makeRlRecords } from '../lib/task/index.js';
import { trainRl } from '../lib/train/rl.js';
import { qwen3Shaped } from './qwen3-shape.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const layers = Number(flag('layers', '4'));
const [prompts, samples, tokens] = [Number(flag('prompts', '4')), Number(flag('samples', '4')), Number(flag('tokens', '128'))];
const loraRank = Number(flag('lora', '0'));
const rssMiB = (field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

// Qwen3-0.6B: hidden 1024, 16 heads of 128 over 8 KV heads, SwiGLU 3072, V = 151,936, tied.
const QWEN3_06B = qwen3Shaped({
  hidden: 1024,
  layers: 0,
  vocab: 151936,
  headDim: 128,
  heads: 16,
  kvHeads: 8,
  intermediate: 3072,
  maxPositions: 40960,
});

/** One step in this process: prints {peakMiB, seconds} as JSON. */
async function child(fusedHead: boolean): Promise<void> {
  const tokenizer = await loadTokenizer(join(process.cwd(), 'fixtures/models/qwen3-tiny'));
  const config = { ...QWEN3_06B, num_hidden_layers: layers };
  const [policy, rewardModel] = [await initModel(config, { seed: 1 }), await initModel(config, { seed: 1 })];
  const rl = resolveRlConfig({
    algorithm: 'distrl-ipvrm',
    steps: 1,
    fusedHead,
    rollout: { promptsPerStep: prompts, samples, oversample: 1, maxNewTokens: tokens, batchSize: prompts * samples },
    actor: { microBatch: prompts * samples, ...(loraRank > 0 ? { lora: { rank: loraRank, alpha: loraRank } } : {}) },
  });
  global.gc?.();
  writeFileSync('/proc/self/clear_refs', '5');
  const base = rssMiB('VmRSS');
  const start = performance.now();
  // A reward the random policy cannot see coming: the parity of the first response token.
  const [step] = await trainRl({ policy, rewardModel }, tokenizer, makeRlRecords(0, prompts), rl, {
    reward: (rollout) => (rollout.response_ids[0] % 2 === 0 ? 1 : 0),
  });
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ peakMiB: rssMiB('VmHWM') - base, baseMiB: base, seconds, responseTokens: step.tokens, rmLoss: step.rmLoss }));
}

async function main(): Promise<void> {
  const variant = flag('variant', '');
  if (variant) return child(variant === 'fused');
  const report = environmentReport();
  console.log(
    `# DistRL step memory: Qwen3-0.6B shape with ${layers} layers, ${prompts} prompts × ${samples} samples × ≤ ${tokens} new tokens, float32` +
      (loraRank > 0 ? `, a rank-${loraRank} LoRA actor` : ''),
  );
  console.log(`# libtorch ${report.build.torchVersion}, ${report.runtime.numThreads} threads, ${cpus()[0]?.model ?? 'cpu'}`);
  console.log('| path | peak RSS above loaded MiB | vs logits path | RSS with models loaded MiB | step s | tokens |');
  console.log('|---|---|---|---|---|---|');
  const script = fileURLToPath(import.meta.url);
  const rows: { name: string; peakMiB: number; baseMiB: number; seconds: number; responseTokens: number }[] = [];
  const variants: [string, string, Record<string, string>?][] = [
    ['logits path (fusedHead: false)', 'logits'],
    ['fused head (fusedHead: true)', 'fused'],
  ];
  if (loraRank > 0) variants.push(['fused head, recompute (PREFIX_RL_HEAD_RECOMPUTE=1)', 'fused', { PREFIX_RL_HEAD_RECOMPUTE: '1' }]);
  for (const [name, value, env] of variants) {
    const out = execFileSync(process.execPath, ['--expose-gc', script, ...process.argv.slice(2), `--variant=${value}`], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    rows.push({ name, ...JSON.parse(out.trim().split('\n').at(-1)!) });
  }
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.peakMiB.toFixed(0)} | ${(r.peakMiB / rows[0].peakMiB).toFixed(3)} | ${r.baseMiB.toFixed(0)} | ${r.seconds.toFixed(1)} | ${r.responseTokens} |`,
    );
  }
}

await main();
