// One rank of the process-group tests (compiled dist/), joined from the launcher's environment. argv[2] names the
// scenario; the rank prints one JSON line of results on stdout, or its error as {"error", "code"}.
//   collectives  all-reduce (several dtypes and shapes), numbers, gradients, broadcast, variable all-gather, objects
//   dies         rank 1 exits before the second collective; the others wait in it
//   killed       as dies, but rank 1 is killed by SIGKILL (as by the OOM killer)
//   hangs        rank 1 reaches the collective three timeouts late
import { initProcessGroup, launchEnv } from '../../dist/lib/distributed/index.js';
import { Tensor } from '../../dist/lib/tensor/index.js';

const scenario = process.argv[2];
const env = launchEnv();
const timeoutSeconds = Number(process.env.PREFIX_RL_DIST_TIMEOUT ?? 60);
const group = await initProcessGroup(env, { timeoutSeconds, bucketBytes: 64 });
const { rank } = group;
const out = { rank };

/** One all-reduce, its failure and how long it took to fail recorded in `out`. */
async function timedAllReduce() {
  const start = performance.now();
  try {
    await group.allReduce([Tensor.from(Float32Array.from([1]), [1])]);
  } catch (err) {
    Object.assign(out, { error: err.message, code: err.code, seconds: (performance.now() - start) / 1000 });
  }
}
try {
  if (scenario === 'collectives') {
    const a = Tensor.from(
      Float32Array.from({ length: 6 }, (_, i) => rank * 10 + i),
      [2, 3],
    );
    const b = Tensor.from(Float64Array.from([rank + 0.5]), [1]);
    const c = Tensor.from(BigInt64Array.from([BigInt(rank), 2n ** 40n]), [2]);
    await group.allReduce([a, b, c]);
    out.sum = { a: a.toNumbers(), b: b.toNumbers(), c: c.toNumbers() };
    const m = Tensor.from(Float32Array.from([rank, -rank]), [2]);
    await group.allReduce([m], 'max');
    out.max = m.toNumbers();
    out.numbers = await group.allReduceNumbers([rank, 1]);
    // Gradients: rank 0 has one on p only, rank 1 on both; q has none anywhere and keeps none.
    const p = Tensor.from(Float32Array.from([1, 2]), [2]);
    const q = Tensor.from(Float32Array.from([3]), [1]);
    const r = Tensor.from(Float32Array.from([5]), [1]);
    for (const t of [p, q, r]) t.requiresGrad = true;
    await p
      .mul(rank + 1)
      .sum()
      .backwardAsync();
    if (rank === 1) await r.mul(7).sum().backwardAsync();
    await group.allReduceGradients([p, q, r]);
    out.grads = { p: p.grad?.toNumbers(), q: q.grad === null ? null : q.grad.toNumbers(), r: r.grad?.toNumbers() };
    // The same sums through the reducer, overlapped with rank 1's backward: buckets [r2], [q2], [p2] (64 bytes
    // each at most); r2's starts during the backward, q2's never fills (no gradient), so p2's waits for finish, as
    // buckets start in order. Rank 0 runs no backward: its buckets all start in finish.
    const [p2, q2, r2] = [new Float32Array(16).fill(1), Float32Array.from([3]), new Float32Array(16).fill(5)].map((v) => Tensor.from(v, [v.length]));
    for (const t of [p2, q2, r2]) t.requiresGrad = true;
    const reducer = group.gradientReducer([p2, q2, r2]);
    if (rank === 1) {
      await reducer.arm();
      await p2.mul(2).sum().add(r2.mul(7).sum()).backwardAsync();
    }
    const started = await reducer.finish();
    out.reduced = { p: p2.grad?.toNumbers(), q: q2.grad === null ? null : q2.grad.toNumbers(), r: r2.grad?.toNumbers(), ...started };
    // A step abandoned after its backward started a bucket (no finish: a failed step) is forgotten by the next arm:
    // that step's sums are its own. Both ranks: r3's bucket starts in the abandoned backward (r3.grad = 7, kept
    // locally), then a full step (p3.grad = 2, r3.grad = 7 + 7) sums to p3 4, r3 28.
    const [p3, r3] = [new Float32Array(16).fill(1), new Float32Array(16).fill(5)].map((v) => Tensor.from(v, [v.length]));
    for (const t of [p3, r3]) t.requiresGrad = true;
    const again = group.gradientReducer([p3, r3]);
    await again.arm();
    await r3.mul(7).sum().backwardAsync();
    await again.arm();
    await p3.mul(2).sum().add(r3.mul(7).sum()).backwardAsync();
    await again.finish();
    out.afterAbandoned = { p: p3.grad?.toNumbers(), r: r3.grad?.toNumbers() };
    await again.close();
    await reducer.close();
    const w = Tensor.from(Float32Array.from([rank, rank]), [2]);
    await group.broadcast([w], 1);
    out.broadcast = w.toNumbers();
    const parts = await group.allGather(
      Tensor.from(
        Float32Array.from({ length: 2 * (rank + 1) }, () => rank),
        [rank + 1, 2],
      ),
    );
    out.gathered = parts.map((t) => ({ shape: t.shape, values: t.toNumbers() }));
    out.objects = await group.allGatherObjects({ rank, text: 'é'.repeat(rank + 1) });
    try {
      await group.allGather(rank === 0 ? Tensor.from(Float32Array.from([1]), [1]) : Tensor.from(Float64Array.from([1]), [1]));
    } catch (err) {
      out.mismatch = err.message;
    }
    await group.barrier();
  } else if (scenario === 'hangs') {
    // Rank 1 is alive but late by three timeouts: the others' collective times out naming it.
    if (rank === 1) await new Promise((resolve) => setTimeout(resolve, 3000 * timeoutSeconds));
    await timedAllReduce();
  } else if (scenario === 'dies' || scenario === 'killed') {
    await group.barrier();
    if (rank === 1 && scenario === 'dies') process.exit(3);
    if (rank === 1) process.kill(process.pid, 'SIGKILL');
    await timedAllReduce();
  }
} catch (err) {
  out.error = err.message;
  out.code = err.code;
}
process.stdout.write(JSON.stringify(out) + '\n');
await group.close();
