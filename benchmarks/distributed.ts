// Data-parallel step time on this CPU: one process with T intra-op threads against 2 ranks × T/2 threads (Gloo over
// loopback), at equal global batch, for an SFT step and a DistRL step (policy + online IPVRM: sampling, π_old, the RM
// update and scoring, the policy update). Each setting runs in its own processes; the ranks join as under
// `prefix-rl launch`. Reported per workload: the median step time of rank 0 over the timed steps (after one warm-up
// step), the ratio 2-rank / 1-rank (the communication overhead is the ratio against a perfect 1.0), and the share
// of the 2-rank step spent finishing the gradient all-reduce after the backward (its buckets start during the
// backward; this is what is left, including waiting for the slower rank).
// Run: npm run bench:distributed [-- --hidden=512 --layers=6 --vocab=8192 --steps=4 --threads=2]
import { execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRlConfig } from '../lib/config/rl.js';
import { initProcessGroup, launchEnv, SINGLE_PROCESS, type ProcessGroup } from '../lib/distributed/index.js';
import { initModel } from '../lib/model/index.js';
import { makeRlRecords } from '../lib/task/index.js';
import { loadTokenizer } from '../lib/tokenizer/index.js';
import { RlSession } from '../lib/train/rl.js';
import { SftSession, type SftExample } from '../lib/train/sft.js';
import { Rng } from '../lib/util/rng.js';
import { qwen3Shaped } from './qwen3-shape.js';

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const [hidden, layers, vocab, steps, threads] = ['hidden', 'layers', 'vocab', 'steps', 'threads'].map((name, i) =>
  Number(flag(name, ['512', '6', '8192', '4', '2'][i])),
);
const modelConfig = qwen3Shaped({ hidden, layers, vocab });

/**
 * Times what the gradient all-reduce adds after the backward: its reducers' finish(). Without `overlap`, reducers
 * are never armed, so every bucket starts after the backward (the all-reduce of a plain allReduceGradients).
 */
function timed(group: ProcessGroup, spent: { seconds: number }, overlap: boolean): ProcessGroup {
  return new Proxy(group, {
    get(target, key, receiver) {
      if (key !== 'gradientReducer') return Reflect.get(target, key, receiver);
      return (...args: Parameters<ProcessGroup['gradientReducer']>) => {
        const reducer = target.gradientReducer(...args);
        return {
          ...reducer,
          arm: overlap ? reducer.arm : async () => {},
          finish: async (options?: Parameters<typeof reducer.finish>[0]) => {
            const start = performance.now();
            const result = await reducer.finish(options);
            spent.seconds += (performance.now() - start) / 1000;
            return result;
          },
        };
      };
    },
  });
}

/** One rank (or the single process): prints {stepSeconds, allReduceSeconds} of the timed steps as JSON (rank 0). */
async function child(workload: string): Promise<void> {
  const env = launchEnv();
  const joined = env ? await initProcessGroup(env, { timeoutSeconds: 600 }) : SINGLE_PROCESS;
  const spent = { seconds: 0 };
  const group = timed(joined, spent, flag('overlap', '1') === '1');
  const session =
    workload === 'sft'
      ? new SftSession(await initModel(modelConfig, { seed: 1 }), sftExamples(), { steps: steps + 1, batchSize: 16, group })
      : await RlSession.open(
          { policy: await initModel(modelConfig, { seed: 1 }), rewardModel: await initModel(modelConfig, { seed: 1 }) },
          await loadTokenizer(join(process.cwd(), 'fixtures/models/qwen3-tiny')),
          makeRlRecords(0, 64),
          resolveRlConfig({
            algorithm: 'distrl-ipvrm',
            steps: steps + 1,
            rollout: { promptsPerStep: 8, samples: 4, oversample: 1, maxNewTokens: 64, batchSize: 16 },
            actor: { microBatch: 16 },
          }),
          { group, reward: (rollout) => rollout.response_ids[0] % 2 },
        );
  const times: number[] = [];
  for (let step = 0; step <= steps; step++) {
    if (step === 1) spent.seconds = 0;
    const start = performance.now();
    await session.next();
    if (step > 0) times.push((performance.now() - start) / 1000);
  }
  await session.close();
  times.sort((a, b) => a - b);
  if (joined.rank === 0)
    process.stdout.write(JSON.stringify({ stepSeconds: times[Math.floor(times.length / 2)], allReduceSeconds: spent.seconds / steps }) + '\n');
  await joined.close();
}

/** 16 × 2 passes of random 256-token sequences, the loss on their last 192. */
function sftExamples(): SftExample[] {
  const rng = new Rng(3);
  return Array.from({ length: 32 }, () => ({ tokens: Array.from({ length: 256 }, () => 3 + Math.floor(rng.next() * (vocab - 3))), lossStart: 64 }));
}

function run(workload: string, ranks: number, overlap = true): { stepSeconds: number; allReduceSeconds: number } {
  const script = fileURLToPath(import.meta.url);
  const each = String(Math.max(1, threads / ranks));
  const port = String(29600 + Math.floor(Math.random() * 1000));
  const envs = Array.from({ length: ranks }, (_, rank) => ({
    ...process.env,
    PREFIX_RL_NUM_THREADS: each,
    OMP_NUM_THREADS: each,
    ...(ranks > 1 && { WORLD_SIZE: String(ranks), RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port }),
  }));
  const argv = [script, `--child=${workload}`, `--overlap=${overlap ? 1 : 0}`, ...process.argv.slice(2)];
  // Ranks other than 0 in the background (only rank 0 reports), rank 0 in the foreground.
  const others = envs.slice(1).map((env) => spawn(process.execPath, argv, { env, stdio: 'ignore' }));
  const out = execFileSync(process.execPath, argv, { env: envs[0], encoding: 'utf8' });
  others.forEach((child) => child.kill());
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const workload = flag('child', '');
if (workload) await child(workload);
else {
  console.log(`Data-parallel step time, ${cpus()[0].model.trim()}, ${threads} threads in all`);
  console.log(`model: Qwen3-shaped, hidden ${hidden}, ${layers} layers, V = ${vocab} (random weights); median of ${steps} steps after one warm-up\n`);
  console.log(
    '| workload | 1 process × %d threads | 2 ranks × %d, all-reduce overlapped | ratio | all-reduce left after the backward | 2 ranks, all-reduce after the backward | ratio |',
    threads,
    Math.max(1, threads / 2),
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, label] of [
    ['sft', 'SFT step, 16 × 256 tokens'],
    ['rl', 'DistRL step, 8 prompts × 4 samples, 64 new tokens'],
  ]) {
    const one = run(name, 1);
    const two = run(name, 2);
    const after = run(name, 2, false);
    const share = (r: typeof two) => `${r.allReduceSeconds.toFixed(3)} s (${((100 * r.allReduceSeconds) / r.stepSeconds).toFixed(0)} %)`;
    console.log(
      `| ${label} | ${one.stepSeconds.toFixed(2)} s | ${two.stepSeconds.toFixed(2)} s | ${(two.stepSeconds / one.stepSeconds).toFixed(2)}× | ${share(two)} | ` +
        `${after.stepSeconds.toFixed(2)} s, ${share(after)} after | ${(after.stepSeconds / one.stepSeconds).toFixed(2)}× |`,
    );
  }
}
