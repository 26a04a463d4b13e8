// Training primitives: AdamW and gradient clipping (native, on the compute thread) and learning-rate schedules.
// A training step: zeroGrad → forward/backward per micro-batch (scale each loss by 1 / micro-batches to accumulate)
// → clipGradNorm → step({ lr: schedule(step) }).
import { addon, type NativeAdamW, type NativeTensor } from '../native/addon.js';
import { withCancel } from '../tensor/cancel.js';
import type { AsyncOptions, Tensor } from '../tensor/tensor.js';

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

  constructor(parameters: Parameters, options: AdamWOptions) {
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    this.native = new (addon().NativeAdamW)(nativeTensors(parameters), {
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
}

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
