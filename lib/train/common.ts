// What the training loops (SFT, reward models, RL) share: sequences with a scored region and their mask, a model
// whose parameters train under AdamW (Trainee, with the one optimizer-step helper), and the session interface that
// lets the run layer checkpoint and resume any of them.
import { shareOf, SINGLE_PROCESS, type GradientReducer, type ProcessGroup } from '../distributed/group.js';
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
 *
 * Data-parallel over `group`: each rank runs its contiguous share of a step's micro-batches, the gradients are
 * summed over the ranks before clipping, and rank 0's weights are broadcast before the first step, so every rank
 * takes the same update. A micro-batch's loss share is therefore scaled to the whole step (the step's global token
 * or sequence count, or 1 / micro-batches), as in one process.
 */
export class Trainee {
  readonly optimizer: AdamW;
  readonly parameters: Map<string, Tensor>;
  private readonly requiredGrad: boolean[];
  private synced = false;
  private reducer: GradientReducer | undefined;

  constructor(
    readonly model: CausalLM,
    options: AdamWOptions,
    readonly group: ProcessGroup = SINGLE_PROCESS,
  ) {
    this.parameters = model.lora ? model.loraParameters() : model.parameters();
    this.requiredGrad = [...this.parameters.values()].map((parameter) => parameter.requiresGrad);
    for (const parameter of this.parameters.values()) parameter.requiresGrad = true;
    this.optimizer = new AdamW(this.parameters, options);
  }

  /**
   * One optimizer step: zero the gradients, run `backward` on each of this rank's micro-batches in turn (inside its
   * own tidy scope; it computes a loss share and calls backward on it), sum the gradients over the ranks, clip the
   * gradient norm to `maxGradNorm`, and update at `lr` when the norm is finite (a step with a non-finite gradient is
   * skipped). Resolves to the norm before clipping and what `backward` returned for each micro-batch this rank ran.
   */
  async step<M, T>(
    microBatches: readonly M[],
    options: AsyncOptions & { lr: number; maxGradNorm: number },
    backward: (micro: M, index: number) => Promise<T>,
  ): Promise<{ gradNorm: number; outputs: T[] }> {
    const { signal } = options;
    const { group } = this;
    await this.optimizer.zeroGrad({ signal });
    if (!this.synced) {
      await group.broadcast([...this.parameters.values()], 0, { signal });
      this.synced = true;
    }
    const outputs: T[] = [];
    const [start, end] = shareOf(microBatches.length, group);
    // The gradient sum starts during this rank's last backward, bucket by bucket, and ends after it.
    const reducer = (this.reducer ??= group.gradientReducer(this.parameters.values()));
    for (let index = start; index < end; index++) {
      if (index === end - 1) await reducer.arm({ signal });
      outputs.push(await tidy(() => backward(microBatches[index], index)));
    }
    await reducer.finish({ signal });
    const gradNorm = await clipGradNorm(this.parameters, options.maxGradNorm, { signal });
    if (Number.isFinite(gradNorm)) await this.optimizer.step({ lr: options.lr, signal });
    return { gradNorm, outputs };
  }

  async close(): Promise<void> {
    await this.reducer?.close();
    await this.optimizer.zeroGrad();
    [...this.parameters.values()].forEach((parameter, i) => {
      parameter.requiresGrad = this.requiredGrad[i];
      parameter.dispose();
    });
  }
}

/**
 * `items` cut into at most `parts` contiguous, near-equal, non-empty pieces, in order: a step's batch as the
 * micro-batches its ranks share (see Trainee.step); one piece for a single process.
 */
export function splitContiguous<T>(items: readonly T[], parts: number): T[][] {
  const count = Math.min(parts, items.length);
  return Array.from({ length: count }, (_, i) => items.slice(Math.floor((items.length * i) / count), Math.floor((items.length * (i + 1)) / count)));
}

/** Tokens a batch scores (those of scoredMask): each sequence's from max(lossStart, 1) on. */
export function scoredTokens(batch: readonly ScoredSequence[]): number {
  return batch.reduce((sum, s) => sum + Math.max(0, s.tokens.length - Math.max(s.lossStart, 1)), 0);
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

/**
 * Whether `maxMinutes` have passed since `start`, decided by every rank of the session's group together (any rank's
 * clock past the limit stops all of them): ranks that stopped at different steps would leave the others waiting in
 * the next step's collectives. No limit: false, with no collective.
 */
export async function timeIsUp(session: TrainingSession<unknown>, start: number, maxMinutes: number | undefined): Promise<boolean> {
  if (maxMinutes === undefined) return false;
  const up = (performance.now() - start) / 60_000 >= maxMinutes ? 1 : 0;
  const group = Object.values(session.trainees)[0]?.group ?? SINGLE_PROCESS;
  return group.worldSize > 1 ? (await group.allReduceNumbers([up], 'max'))[0] === 1 : up === 1;
}

/** Runs a session to its end (or until `maxMinutes` have passed) and returns its step records, then closes it. */
export async function runToEnd<R>(session: TrainingSession<R>, options: { onStep?: (record: R) => void; maxMinutes?: number } = {}): Promise<R[]> {
  const start = performance.now();
  const history: R[] = [];
  try {
    while (session.stepsDone < session.totalSteps) {
      if (await timeIsUp(session, start, options.maxMinutes)) break;
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
