// What the training loops (SFT, reward models, RL) share: sequences with a scored region and their mask, a model
// whose parameters train under AdamW (Trainee, with the one optimizer-step helper), and the session interface that
// lets the run layer checkpoint and resume any of them.
import { AdamW, clipGradNorm, type AdamWOptions } from '../model/optim.js';
import type { CausalLM } from '../model/causal-lm.js';
import { Tensor, tidy, type AsyncOptions, type DeviceName } from '../tensor/index.js';

/** A token sequence whose tokens from `lossStart` on are scored: a response after its prompt. */
export interface ScoredSequence {
  tokens: number[];
  lossStart: number;
}

/**
 * [B, T-1] float32 in tokenLogprobs' layout (position j holds token j + 1): 1 where that token is scored (index ≥
 * lossStart, not padding), 0 elsewhere. `time` is the padded batch's length T; made on `device` (the logits').
 */
export function scoredMask(batch: readonly ScoredSequence[], time: number, device: DeviceName): Tensor {
  const mask = new Float32Array(batch.length * (time - 1));
  batch.forEach((sequence, row) => {
    for (let t = Math.max(sequence.lossStart, 1); t < sequence.tokens.length; t++) mask[row * (time - 1) + t - 1] = 1;
  });
  return Tensor.from(mask, [batch.length, time - 1], { device });
}

/**
 * A model being trained: its trainable parameters — the LoRA adapter's when one is attached (the base weights stay
 * frozen), else every parameter — set to require grad, and an AdamW over them. `close()` drops the gradients and
 * restores each parameter's requiresGrad, so the model is for inference again.
 */
export class Trainee {
  readonly optimizer: AdamW;
  readonly parameters: Map<string, Tensor>;
  private readonly requiredGrad: boolean[];

  constructor(
    readonly model: CausalLM,
    options: AdamWOptions,
  ) {
    this.parameters = model.lora ? model.loraParameters() : model.parameters();
    this.requiredGrad = [...this.parameters.values()].map((parameter) => parameter.requiresGrad);
    for (const parameter of this.parameters.values()) parameter.requiresGrad = true;
    this.optimizer = new AdamW(this.parameters, options);
  }

  /**
   * One optimizer step: zero the gradients, run `backward` on each micro-batch in turn (inside its own tidy scope; it
   * computes a loss share and calls backward on it), clip the gradient norm to `maxGradNorm`, and update at `lr`
   * when the norm is finite (a step with a non-finite gradient is skipped). Resolves to the norm before clipping and
   * what `backward` returned for each micro-batch.
   */
  async step<M, T>(
    microBatches: readonly M[],
    options: AsyncOptions & { lr: number; maxGradNorm: number },
    backward: (micro: M, index: number) => Promise<T>,
  ): Promise<{ gradNorm: number; outputs: T[] }> {
    const { signal } = options;
    await this.optimizer.zeroGrad({ signal });
    const outputs: T[] = [];
    for (const [index, micro] of microBatches.entries()) outputs.push(await tidy(() => backward(micro, index)));
    const gradNorm = await clipGradNorm(this.parameters, options.maxGradNorm, { signal });
    if (Number.isFinite(gradNorm)) await this.optimizer.step({ lr: options.lr, signal });
    return { gradNorm, outputs };
  }

  async close(): Promise<void> {
    await this.optimizer.zeroGrad();
    [...this.parameters.values()].forEach((parameter, i) => {
      parameter.requiresGrad = this.requiredGrad[i];
      parameter.dispose();
    });
  }
}

/**
 * A training loop that runs one step at a time and can stop and resume exactly: a checkpoint holds its models'
 * weights, its trainees' optimizer states and `state()` (the step count, RNG and data positions), and a session
 * opened on the same inputs and given them back (`restore`, each optimizer's `load`) continues bit for bit.
 */
export interface TrainingSession<StepRecord> {
  /** Steps done so far. */
  readonly stepsDone: number;
  readonly totalSteps: number;
  /** The models trained, by the name their checkpoint folder takes; a LoRA model saves its adapter. */
  readonly trainees: Readonly<Record<string, Trainee>>;
  /** Runs the next step. */
  next(): Promise<StepRecord>;
  /** JSON of everything besides weights and optimizer states that the next steps depend on. */
  state(): Record<string, unknown>;
  /** Takes back a `state()` (after the trainees' weights and optimizer states are restored). */
  restore(state: Record<string, unknown>): void;
  /** Ends training (drops gradients, restores requiresGrad); the models stay usable. */
  close(): Promise<void>;
}

/** Runs a session to its end (or until `maxMinutes` have passed) and returns its step records, then closes it. */
export async function runToEnd<R>(session: TrainingSession<R>, options: { onStep?: (record: R) => void; maxMinutes?: number } = {}): Promise<R[]> {
  const start = performance.now();
  const history: R[] = [];
  try {
    while (session.stepsDone < session.totalSteps) {
      if (options.maxMinutes !== undefined && (performance.now() - start) / 60_000 >= options.maxMinutes) break;
      const record = await session.next();
      history.push(record);
      options.onStep?.(record);
    }
  } finally {
    await session.close();
  }
  return history;
}

/** A field of a restored state, checked: a checkpoint from another kind of session is refused clearly. */
export function stateField<T>(state: Record<string, unknown>, key: string, check: (value: unknown) => boolean): T {
  const value = state[key];
  if (!check(value)) throw new Error(`checkpoint state: '${key}' is missing or malformed`);
  return value as T;
}
