// Training primitives: AdamW and gradient clipping (native, on the compute thread) and learning-rate schedules.
// A training step: zeroGrad → forward/backward per micro-batch (scale each loss by 1 / micro-batches to accumulate)
// → clipGradNorm → step({ lr: schedule(step) }).
import { addon, type NativeAdamW, type NativeTensor } from '../native/addon.js';
import { withCancel } from '../tensor/cancel.js';
import { Tensor, type AsyncOptions } from '../tensor/tensor.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';

type Parameters = Iterable<Tensor> | Map<string, Tensor>;
const nativeTensors = (parameters: Parameters): NativeTensor[] =>
  [...(parameters instanceof Map ? parameters.values() : parameters)].map((tensor) => tensor.native);

export interface AdamWOptions {
  /** Learning rate used when step() is given none. */
  lr: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (default 0.01, as torch.optim.AdamW). */
  weightDecay?: number;
}

/**
 * AdamW with the update rule of torch.optim.AdamW. It holds its own references to the parameters (the handles passed
 * in may be disposed); moments are float32 and allocated at a parameter's first update.
 */
export class AdamW {
  private readonly native: NativeAdamW;
  private readonly lr: number;
  /** The parameters' names (their indices when given without names): the keys of a saved state. */
  private readonly names: string[];

  constructor(parameters: Parameters, options: AdamWOptions) {
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    const natives = nativeTensors(parameters);
    this.names = parameters instanceof Map ? [...parameters.keys()] : natives.map((_, i) => String(i));
    this.native = new (addon().NativeAdamW)(natives, {
      beta1,
      beta2,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.01,
    });
    this.lr = options.lr;
  }

  /** Updates every parameter that has a gradient, at `lr` (default: the constructor's). */
  step(options: AsyncOptions & { lr?: number } = {}): Promise<void> {
    return withCancel(options.signal, (token) => this.native.step(options.lr ?? this.lr, token));
  }

  /** Drops the gradients, so that the next backward writes them afresh. */
  zeroGrad(options: AsyncOptions = {}): Promise<void> {
    return withCancel(options.signal, (token) => this.native.zeroGrad(token));
  }

  /** Number of step() calls so far. */
  get steps(): number {
    return this.native.steps;
  }

  /**
   * Writes the state — each parameter's moments (float32, as `exp_avg.<name>` / `exp_avg_sq.<name>`) and update
   * count, the step count — to one safetensors file; `load` restores it exactly.
   */
  async save(file: string, options: AsyncOptions = {}): Promise<void> {
    const state = await withCancel(options.signal, (token) => this.native.state(token));
    const tensors = new Map<string, Tensor>();
    this.names.forEach((name, i) => {
      tensors.set(`exp_avg.${name}`, Tensor.wrap(state.expAvg[i]));
      tensors.set(`exp_avg_sq.${name}`, Tensor.wrap(state.expAvgSq[i]));
    });
    const counts = { steps: Object.fromEntries(this.names.map((name, i) => [name, state.steps[i]])), stepsTaken: state.stepsTaken };
    try {
      await writeSafetensors(file, tensors, { format: 'pt', [ADAMW_METADATA]: JSON.stringify(counts) }, options);
    } finally {
      for (const tensor of tensors.values()) tensor.dispose();
    }
  }

  /** Restores a state written by `save` for the same parameters (names and shapes are checked). */
  async load(file: string, options: AsyncOptions = {}): Promise<void> {
    const { tensors, metadata } = await readSafetensors(file, options);
    try {
      const fail = (message: string): never => {
        throw new Error(`${file}: not this optimizer's state: ${message}`);
      };
      let counts: { steps: Record<string, number>; stepsTaken: number };
      try {
        counts = JSON.parse(metadata[ADAMW_METADATA] ?? fail(`no ${ADAMW_METADATA} metadata`));
      } catch (err) {
        return fail((err as Error).message);
      }
      const moment = (kind: string, name: string) => (tensors.get(`${kind}.${name}`) ?? fail(`no ${kind} for parameter ${name}`)).native;
      const extra = tensors.size - 2 * this.names.length;
      if (extra !== 0) fail(`it holds ${tensors.size / 2} parameters' moments, the optimizer has ${this.names.length}`);
      const steps = this.names.map((name) => counts.steps?.[name] ?? fail(`no step count for parameter ${name}`));
      await withCancel(options.signal, (token) =>
        this.native.loadState(
          {
            expAvg: this.names.map((name) => moment('exp_avg', name)),
            expAvgSq: this.names.map((name) => moment('exp_avg_sq', name)),
            steps,
            stepsTaken: counts.stepsTaken,
          },
          token,
        ),
      );
    } finally {
      for (const tensor of tensors.values()) tensor.dispose();
    }
  }
}

const ADAMW_METADATA = 'prefix_rl_adamw';

/**
 * Scales the gradients of `parameters` so that their global L2 norm is at most `maxNorm` (torch's
 * clip_grad_norm_) and resolves to the norm before clipping: NaN or Infinity when a gradient is not finite, in
 * which case nothing is scaled and the caller should skip the step.
 */
export function clipGradNorm(parameters: Parameters, maxNorm: number, options: AsyncOptions = {}): Promise<number> {
  const natives = nativeTensors(parameters);
  return withCancel(options.signal, (token) => addon().clipGradNorm(natives, maxNorm, token));
}

/** Learning rate at optimizer step `step` (0-based). */
export type LrSchedule = (step: number) => number;

export interface ScheduleOptions {
  /** Steps of linear warm-up from 0 to the peak rate (default 0). */
  warmupSteps?: number;
  /** Steps after which the rate stays at minLr (required by the decaying schedules). */
  totalSteps: number;
  /** Final rate (default 0). */
  minLr?: number;
}

function warmup(lr: number, warmupSteps: number, step: number): number | undefined {
  return step < warmupSteps ? (lr * (step + 1)) / warmupSteps : undefined;
}

/** The peak rate after an optional warm-up. */
export function constantSchedule(lr: number, options: { warmupSteps?: number } = {}): LrSchedule {
  return (step) => warmup(lr, options.warmupSteps ?? 0, step) ?? lr;
}

/** Warm-up, then a straight line from the peak rate to minLr at totalSteps. */
export function linearSchedule(lr: number, options: ScheduleOptions): LrSchedule {
  const { warmupSteps = 0, totalSteps, minLr = 0 } = options;
  return (step) => {
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return warmup(lr, warmupSteps, step) ?? minLr + (lr - minLr) * (1 - progress);
  };
}

/** Warm-up, then half a cosine from the peak rate to minLr at totalSteps. */
export function cosineSchedule(lr: number, options: ScheduleOptions): LrSchedule {
  const { warmupSteps = 0, totalSteps, minLr = 0 } = options;
  return (step) => {
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return warmup(lr, warmupSteps, step) ?? minLr + ((lr - minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}

export const LR_SCHEDULES = ['constant', 'linear', 'cosine'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

/** The learning rate at each step of a run of `steps` steps. */
export function lrSchedule(name: LrScheduleName, lr: number, options: { warmupSteps: number; totalSteps: number; minLr?: number }): LrSchedule {
  if (!(LR_SCHEDULES as readonly string[]).includes(name)) throw new Error(`schedule must be one of ${LR_SCHEDULES.join(', ')}, got '${name}'`);
  return name === 'constant' ? constantSchedule(lr, options) : (name === 'linear' ? linearSchedule : cosineSchedule)(lr, options);
}
