// All-reduce bandwidth of the process group, as nccl-tests reports it: for float32 tensors of 1 MiB to 1 GiB, the
// median time of a sum over N ranks, its algorithm bandwidth (bytes / time) and bus bandwidth (algbw × 2(N−1)/N,
// what each link carries in a ring, comparable with the device's link bandwidth). It launches its own N ranks (the
// torchrun variables, as `prefix-rl launch` sets them), so it runs from a single bundled file on a GPU machine too:
//   cuda: N = the visible GPUs (≥ 2), one per rank, over NCCL where the addon has it (else Gloo, staged)
//   cpu:  N = 2 ranks of one thread each over Gloo on loopback (the script's dry run; Gloo's numbers, not NCCL's)
// Run: npm run bench:allreduce [-- --device=cuda --nproc=8 --max-mib=1024 --repeats=5 --backend=gloo|nccl]
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defaultBackend, initProcessGroup, launchEnv, launchVariables, type DistributedBackend } from '../lib/distributed/index.js';
import { environmentReport } from '../lib/native/runtime.js';
import { cudaSetDevice, cudaSynchronize, Tensor, tidy } from '../lib/tensor/index.js';

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const device = flag('device', 'cpu');
const maxMiB = Number(flag('max-mib', device === 'cpu' ? '64' : '1024'));
const repeats = Number(flag('repeats', '5'));
const MiB = 2 ** 20;

/** One rank: joins, times each size, and (rank 0) prints the table. */
async function rank(): Promise<void> {
  const env = launchEnv()!;
  const cuda = device === 'cuda';
  if (cuda) await cudaSetDevice(env.localRank);
  const backend = (flag('backend', '') || defaultBackend(device)) as DistributedBackend;
  const sizes: number[] = [];
  for (let mib = 1; mib <= maxMiB; mib *= 4) sizes.push(mib);
  const group = await initProcessGroup(env, { backend, timeoutSeconds: 600, bucketBytes: maxMiB * MiB });
  const rows: string[] = [];
  try {
    for (const mib of sizes) {
      const tensor = tidy(() =>
        Tensor.ones([(mib * MiB) / 4])
          .to(cuda ? `cuda:${env.localRank}` : 'cpu')
          .keep(),
      );
      const times: number[] = [];
      for (let i = 0; i <= repeats; i++) {
        await group.barrier();
        if (cuda) await cudaSynchronize();
        const start = performance.now();
        await group.allReduce([tensor]);
        if (cuda) await cudaSynchronize();
        if (i > 0) times.push((performance.now() - start) / 1000); // the first is the warm-up (communicators, buffers)
      }
      // ones summed once per timed run and the warm-up: world^(repeats + 1), exactly representable at these sizes
      const expected = env.worldSize ** (repeats + 1);
      const ok = tidy(() =>
        tensor
          .to('cpu')
          .slice(0, 0, 4)
          .toNumbers()
          .every((x) => x === expected),
      );
      tensor.dispose();
      const seconds = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
      const algbw = (mib * MiB) / seconds / 1e9;
      const busbw = (algbw * 2 * (env.worldSize - 1)) / env.worldSize;
      rows.push(`| ${mib} MiB | ${(seconds * 1000).toFixed(2)} | ${algbw.toFixed(2)} | ${busbw.toFixed(2)} | ${ok ? 'yes' : 'NO'} |`);
    }
  } finally {
    await group.close();
  }
  if (env.rank !== 0) return;
  const report = environmentReport();
  const where = cuda ? (report.runtime.cudaDevices[0]?.name ?? 'cuda') : `${cpus()[0]?.model ?? 'cpu'}, 1 thread per rank, loopback`;
  console.log(
    `# all-reduce (sum, float32): ${env.worldSize} ranks, ${backend}, ${where}; libtorch ${report.build.torchVersion}; median of ${repeats}`,
  );
  console.log('| size | ms | algbw GB/s | busbw GB/s | sum right |');
  console.log('|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

/** Starts the ranks as `prefix-rl launch` would and waits for them; the first failure's code is the exit code. */
async function launch(): Promise<void> {
  const gpus = environmentReport().runtime.cudaDevices.length;
  const nproc = Number(flag('nproc', device === 'cuda' ? String(gpus) : '2'));
  if (device === 'cuda' && nproc < 2) {
    console.log(`# all-reduce bandwidth: ${gpus} GPU(s) visible; NCCL's bus bandwidth needs 2 or more (skipped)`);
    return;
  }
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const script = fileURLToPath(import.meta.url);
  const codes = await Promise.all(
    Array.from(
      { length: nproc },
      (_, r) =>
        new Promise<number>((resolve) => {
          const place = { rank: r, localRank: r, worldSize: nproc, localWorldSize: nproc, masterAddr: '127.0.0.1', masterPort: port };
          const env = {
            ...process.env,
            ...launchVariables(place),
            ...(device === 'cpu' ? { PREFIX_RL_NUM_THREADS: '1', OMP_NUM_THREADS: '1' } : {}),
          };
          const child = spawn(process.execPath, [script, ...process.argv.slice(2)], { env, stdio: 'inherit' });
          child.on('exit', (code) => resolve(code ?? 1));
        }),
    ),
  );
  process.exitCode = codes.find((code) => code !== 0) ?? 0;
}

await (launchEnv() ? rank() : launch());
