// The process group of data-parallel training, over libtorch's c10d (a TCPStore hosted by rank 0, ProcessGroupGloo
// and, for CUDA ranks, ProcessGroupNCCL): collectives on the compute thread, in order with the torch work around them. A single process
// is the group of one (SINGLE_PROCESS), whose collectives return their input, so training code never branches on
// the world size.
import { addon, type DistributedBackend, type NativeAddon } from '../native/addon.js';
import { withCancel } from '../tensor/cancel.js';
import { Tensor, type AsyncOptions } from '../tensor/tensor.js';
import type { LaunchEnv } from './env.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

/**
 * Sums a model's gradients over the ranks, overlapped with the backward: `arm()` before a step's last backward (on
 * this rank), `finish()` after it, when every gradient holds the sum.
 */
export interface GradientReducer {
  arm(options?: AsyncOptions): Promise<void>;
  /** Resolves to the number of buckets and how many of them started before the backward ended. */
  finish(options?: AsyncOptions): Promise<{ buckets: number; startedDuringBackward: number }>;
  /** Removes its hooks from the parameters. */
  close(): Promise<void>;
}

/** The collectives training uses; every rank must call them in the same order with matching arguments. */
export interface ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** Reduces each tensor over the ranks, in place (tensors of any shapes and dtypes, sent in flat buckets). */
  allReduce(tensors: readonly Tensor[], op?: ReduceOp, options?: AsyncOptions): Promise<void>;
  /** Reduces numbers over the ranks (in float64). */
  allReduceNumbers(values: readonly number[], op?: ReduceOp, options?: AsyncOptions): Promise<number[]>;
  /** Sums every parameter's gradient over the ranks in place; a parameter with none contributes zeros. */
  allReduceGradients(parameters: Iterable<Tensor>, options?: AsyncOptions): Promise<void>;
  /**
   * The same sum, started during the backward: buckets of 25 MiB (bucketBytes) in reverse parameter order, each
   * launched once the armed backward has accumulated all its gradients (DDP's Reducer, on Gloo or NCCL).
   */
  gradientReducer(parameters: Iterable<Tensor>): GradientReducer;
  /** Every rank's tensors take `root`'s values, in place. */
  broadcast(tensors: readonly Tensor[], root?: number, options?: AsyncOptions): Promise<void>;
  /** Every rank's tensor, in rank order (shapes may differ; dtype and number of dimensions may not). */
  allGather(tensor: Tensor, options?: AsyncOptions): Promise<Tensor[]>;
  /** Every rank's JSON value, in rank order. */
  allGatherObjects<T>(value: T, options?: AsyncOptions): Promise<T[]>;
  /** Resolves when every rank has arrived; a rank that does not within the timeout is named in the error. */
  barrier(options?: AsyncOptions): Promise<void>;
  /** Leaves the group (no collective: a failed peer cannot block it). */
  close(): Promise<void>;
}

/** The group of one process: every collective returns its input. */
export const SINGLE_PROCESS: ProcessGroup = {
  rank: 0,
  worldSize: 1,
  allReduce: async () => {},
  allReduceNumbers: async (values) => [...values],
  allReduceGradients: async () => {},
  gradientReducer: () => ({ arm: async () => {}, finish: async () => ({ buckets: 0, startedDuringBackward: 0 }), close: async () => {} }),
  broadcast: async () => {},
  allGather: async (tensor) => [tensor],
  allGatherObjects: async <T>(value: T) => [value],
  barrier: async () => {},
  close: async () => {},
};

export interface JoinOptions extends AsyncOptions {
  /** How long a collective (and the rendezvous) waits for the other ranks (default 1800 s, as PyTorch's). */
  timeoutSeconds?: number;
  /** Largest bucket of a flattened all-reduce or broadcast (default 25 MiB, as DDP's). */
  bucketBytes?: number;
  /**
   * gloo (default): every collective over Gloo, CUDA tensors staged through host memory; nccl: CUDA tensors'
   * all-reduce and broadcast (gradients, weights) over NCCL on the device, the rest (gathers, barrier) over Gloo.
   * nccl needs an addon built with it (buildInfo().distributedBackends) and this rank's GPU set (cudaSetDevice).
   */
  backend?: DistributedBackend;
}

/** The backend a rank on `device` joins with: nccl for a CUDA rank when the addon has it, else gloo. */
export function defaultBackend(device: string): DistributedBackend {
  return device.startsWith('cuda') && addon().buildInfo().distributedBackends.includes('nccl') ? 'nccl' : 'gloo';
}

/**
 * Joins the job `env` describes (see launchEnv): rank 0 hosts the store at masterAddr:masterPort and every rank
 * connects to it; resolves once all `worldSize` ranks have joined, and fails after the timeout naming the setup to
 * check.
 */
export async function initProcessGroup(env: LaunchEnv, options: JoinOptions = {}): Promise<ProcessGroup> {
  const timeoutSeconds = options.timeoutSeconds ?? 1800;
  if (!(timeoutSeconds > 0)) throw new Error('timeoutSeconds must be > 0');
  const native = addon();
  await withCancel(options.signal, (token) =>
    native.distInit(
      {
        rank: env.rank,
        worldSize: env.worldSize,
        masterAddr: env.masterAddr,
        masterPort: env.masterPort,
        timeoutMs: Math.ceil(timeoutSeconds * 1000),
        backend: options.backend ?? 'gloo',
      },
      token,
    ),
  );
  return new C10dGroup(native, env.rank, env.worldSize, options.bucketBytes);
}

class C10dGroup implements ProcessGroup {
  private closed = false;

  constructor(
    private readonly native: NativeAddon,
    readonly rank: number,
    readonly worldSize: number,
    private readonly bucketBytes?: number,
  ) {}

  allReduce(tensors: readonly Tensor[], op: ReduceOp = 'sum', options: AsyncOptions = {}): Promise<void> {
    return withCancel(options.signal, (token) =>
      this.op().distAllReduce!(
        tensors.map((t) => t.native),
        op,
        this.bucketBytes,
        token,
      ),
    );
  }

  async allReduceNumbers(values: readonly number[], op: ReduceOp = 'sum', options: AsyncOptions = {}): Promise<number[]> {
    if (values.length === 0) return [];
    const tensor = Tensor.from(Float64Array.from(values), [values.length]);
    try {
      await this.allReduce([tensor], op, options);
      return [...(tensor.toArray() as Float64Array)];
    } finally {
      tensor.dispose();
    }
  }

  async allReduceGradients(parameters: Iterable<Tensor>, options: AsyncOptions = {}): Promise<void> {
    // A reducer never armed: every bucket starts now, after the backward (no hooks are installed).
    await this.gradientReducer(parameters).finish(options);
  }

  gradientReducer(parameters: Iterable<Tensor>): GradientReducer {
    const native = new (this.op().NativeGradientReducer!)(
      [...parameters].map((t) => t.native),
      this.bucketBytes,
    );
    return {
      arm: (options = {}) => withCancel(options.signal, (token) => native.arm(token)),
      finish: (options = {}) => withCancel(options.signal, (token) => native.finish(token)),
      close: () => native.close(),
    };
  }

  broadcast(tensors: readonly Tensor[], root = 0, options: AsyncOptions = {}): Promise<void> {
    return withCancel(options.signal, (token) =>
      this.op().distBroadcast!(
        tensors.map((t) => t.native),
        root,
        this.bucketBytes,
        token,
      ),
    );
  }

  async allGather(tensor: Tensor, options: AsyncOptions = {}): Promise<Tensor[]> {
    const parts = await withCancel(options.signal, (token) => this.op().distAllGather!(tensor.native, token));
    return parts.map((part) => Tensor.wrap(part));
  }

  async allGatherObjects<T>(value: T, options: AsyncOptions = {}): Promise<T[]> {
    const bytes = Tensor.from(new TextEncoder().encode(JSON.stringify(value)), undefined);
    try {
      const parts = await this.allGather(bytes, options);
      return parts.map((part) => {
        try {
          return JSON.parse(new TextDecoder().decode(part.toArray() as Uint8Array)) as T;
        } finally {
          part.dispose();
        }
      });
    } finally {
      bytes.dispose();
    }
  }

  barrier(options: AsyncOptions = {}): Promise<void> {
    return withCancel(options.signal, (token) => this.op().distBarrier!(token));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.native.distDestroy();
  }

  private op(): NativeAddon {
    if (this.closed) throw new Error(`rank ${this.rank} has left its process group`);
    return this.native;
  }
}

/** This rank's contiguous share [start, end) of `count` items: near-equal, in rank order. */
export function shareOf(count: number, group: Pick<ProcessGroup, 'rank' | 'worldSize'>): [number, number] {
  return [Math.floor((count * group.rank) / group.worldSize), Math.floor((count * (group.rank + 1)) / group.worldSize)];
}
