// Supervised fine-tuning on chat records (the Eurus-2-SFT layout): the loss is the mean negative log-likelihood of the
// final assistant turn's tokens (end-of-turn tokens included) given everything before them, optimized with AdamW,
// linear warm-up and gradient clipping — the recipe of ../shared/reference/controlled-task-facts.md, except that the
// rate decays (cosine by default) so the run ends on a small rate rather than a spike.
import { lrSchedule, padBatch, type CausalLM, type LrSchedule, type LrScheduleName } from '../model/index.js';
import { Rng } from '../util/rng.js';
import type { AsyncOptions } from '../tensor/index.js';
import type { ChatTurn, Tokenizer } from '../tokenizer/index.js';
import type { ProcessGroup } from '../distributed/group.js';
import { runToEnd, scoredMask, scoredTokens, splitContiguous, stateField, Trainee, type ScoredSequence, type TrainingSession } from './common.js';

/** One training sequence: the loss covers tokens[lossStart..]. */
export type SftExample = ScoredSequence;

/**
 * Tokenizes a chat whose last turn is the assistant's answer: the prompt is the chat before it rendered with the
 * generation prompt, which must be a prefix of the whole chat's tokens (true of every template that renders turns
 * in order).
 */
export function sftExample(tokenizer: Tokenizer, messages: readonly ChatTurn[]): SftExample {
  if (messages.length < 2 || messages.at(-1)!.role !== 'assistant') {
    throw new Error('an SFT chat needs at least one turn before a final assistant turn');
  }
  const tokens = tokenizer.encodeChat(messages);
  const prompt = tokenizer.encodeChat(messages.slice(0, -1), { addGenerationPrompt: true });
  if (prompt.length >= tokens.length || prompt.some((token, i) => token !== tokens[i])) {
    throw new Error('the chat template does not render the prompt as a prefix of the whole chat');
  }
  return { tokens, lossStart: prompt.length };
}

export interface SftOptions extends AsyncOptions {
  /** Optimizer steps (one batch each). */
  steps: number;
  batchSize: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Steps of linear warm-up (default 100, at most steps). */
  warmupSteps?: number;
  /** After the warm-up: cosine (default) or linear decay to minLr at the last step, or constant. */
  schedule?: LrScheduleName;
  /** Final rate of a decaying schedule (default 0). */
  minLr?: number;
  /** Default [0.9, 0.98]. */
  betas?: [number, number];
  /** Default 0.01. */
  weightDecay?: number;
  /** Gradient clipping norm (default 1). */
  maxGradNorm?: number;
  /** Stop early after this many minutes of training (default: no limit). */
  maxMinutes?: number;
  /** Seed of the batch order (default 0). */
  seed?: number;
  /** The token loss through the fused LM head (default true; false: from the logits). */
  fusedHead?: boolean;
  /** Called after every step. */
  onStep?: (step: SftStep) => void;
  /** Data-parallel: the ranks share each batch (see Trainee); every rank gets the same records. */
  group?: ProcessGroup;
}

export interface SftStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens in the step's batch (prompt and response, no padding). */
  tokens: number;
  seconds: number;
}

/**
 * SFT one step at a time (see sft): each pass over the examples is shuffled, then grouped by length (see
 * lengthGroupedBatches) so that little of a batch is padding; a step with a non-finite gradient norm is skipped.
 */
export class SftSession implements TrainingSession<SftStep> {
  readonly totalSteps: number;
  readonly trainees: Readonly<Record<string, Trainee>>;
  private readonly trainee: Trainee;
  private readonly schedule: LrSchedule;
  private readonly rng: Rng;
  private readonly start = performance.now();
  private batches: number[][] = [];
  private done = 0;

  constructor(
    model: CausalLM,
    private readonly examples: readonly SftExample[],
    private readonly options: Omit<SftOptions, 'onStep' | 'maxMinutes'>,
  ) {
    const { steps, batchSize, lr = 1e-3, betas = [0.9, 0.98], weightDecay = 0.01, seed = 0 } = options;
    if (examples.length === 0) throw new Error('sft needs at least one example');
    if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(batchSize) && batchSize > 0)) {
      throw new Error('steps and batchSize must be positive integers');
    }
    this.totalSteps = steps;
    this.schedule = lrSchedule(options.schedule ?? 'cosine', lr, {
      warmupSteps: Math.min(options.warmupSteps ?? 100, steps),
      totalSteps: steps,
      minLr: options.minLr,
    });
    this.rng = new Rng(seed);
    this.trainee = new Trainee(model, { lr, betas, weightDecay }, options.group);
    this.trainees = { model: this.trainee };
  }

  get stepsDone(): number {
    return this.done;
  }

  async next(): Promise<SftStep> {
    const { model } = this.trainee;
    const { signal, batchSize } = this.options;
    if (this.batches.length === 0) this.batches = lengthGroupedBatches(this.examples, batchSize, this.rng);
    const batch = this.batches.pop()!.map((i) => this.examples[i]);
    const lr = this.schedule(this.done);
    // The token mean over the whole batch: each rank's rows contribute their sum over the batch's token count.
    const scored = scoredTokens(batch);
    const { group } = this.trainee;
    const parts = splitContiguous(batch, group.worldSize);
    const { gradNorm, outputs } = await this.trainee.step(parts, { lr, maxGradNorm: this.options.maxGradNorm ?? 1, signal }, async (micro) => {
      const { inputIds, attentionMask } = padBatch(micro.map((e) => e.tokens));
      const logprobs = await model.tokenLogprobs(inputIds, attentionMask, { fusedHead: this.options.fusedHead, signal });
      const mask = scoredMask(micro, inputIds.shape[1], model.device);
      const share = logprobs.mul(mask).sum().div(scored).neg();
      await share.backwardAsync(undefined, { signal });
      return share.item();
    });
    const [loss] = await group.allReduceNumbers([outputs.reduce((a, x) => a + x, 0)], 'sum', { signal });
    const tokens = batch.reduce((sum, e) => sum + e.tokens.length, 0);
    return { step: this.done++, loss, lr, gradNorm, tokens, seconds: (performance.now() - this.start) / 1000 };
  }

  state(): Record<string, unknown> {
    return { step: this.done, rng: this.rng.state, batches: this.batches };
  }

  restore(state: Record<string, unknown>): void {
    this.done = stateField<number>(state, 'step', Number.isInteger);
    this.rng.restore(stateField<number>(state, 'rng', Number.isInteger));
    this.batches = stateField<number[][]>(
      state,
      'batches',
      (v) => Array.isArray(v) && v.every((b) => Array.isArray(b) && b.every((i) => Number.isInteger(i) && i >= 0 && i < this.examples.length)),
    );
  }

  close(): Promise<void> {
    return this.trainee.close();
  }
}

/** Trains the trainable parameters of `model` on `examples` (see SftSession) and returns one record per step. */
export async function sft(model: CausalLM, examples: readonly SftExample[], options: SftOptions): Promise<SftStep[]> {
  return runToEnd(new SftSession(model, examples, options), options);
}

/**
 * One pass over the examples in batches of `batchSize` (the last may be smaller): shuffled, cut into pools of 32
 * batches, each pool sorted by length and cut into batches, and the batches shuffled — random batches of similar
 * lengths, as the controlled-task recipe's one-depth batches.
 */
export function lengthGroupedBatches(examples: readonly SftExample[], batchSize: number, rng: Rng): number[][] {
  const order = rng.permutation(examples.length);
  const batches: number[][] = [];
  const pool = batchSize * 32;
  for (let start = 0; start < order.length; start += pool) {
    const sorted = order.slice(start, start + pool).sort((a, b) => examples[a].tokens.length - examples[b].tokens.length);
    for (let i = 0; i < sorted.length; i += batchSize) batches.push(sorted.slice(i, i + batchSize));
  }
  return rng.permutation(batches.length).map((i) => batches[i]);
}
