// Rollouts: sampled responses to RL prompts, each verified against its ground truth. They feed the reward models
// (outcome labels) and RL (outcome rewards), and their mean is the sampled accuracy.
import { z } from 'zod';
import { readRecords } from '../data/records.js';
import type { RlRecord } from '../data/schemas.js';
import type { CausalLM, FinishReason } from '../model/index.js';
import { TASK_SOURCE } from '../task/datasets.js';
import { shareOf, SINGLE_PROCESS, type ProcessGroup } from '../distributed/group.js';
import type { AsyncOptions } from '../tensor/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { VerifierPool } from '../verify/pool.js';
import type { VerifyRequest } from '../verify/types.js';

export interface RolloutOptions extends AsyncOptions {
  /** Samples per prompt (default 1). */
  samples?: number;
  temperature?: number;
  /** Nucleus sampling: the most likely tokens up to this probability mass (default 1: off). */
  topP?: number;
  maxNewTokens?: number;
  /** Responses sampled together (default 64). */
  batchSize?: number;
  seed?: number;
  /** Called after each sampled batch with the number of rollouts done so far. */
  onBatch?: (done: number, total: number) => void;
  /**
   * Judges the responses (worker threads, a time budget per item): default, a pool of this call's own, closed when
   * it ends. A long run passes one pool for all its calls.
   */
  verifier?: VerifierPool;
  /** Scores each rollout instead of the verifier (e.g. a custom reward); nothing is then verified. */
  reward?: (rollout: Omit<Rollout, 'score'>) => number;
  /**
   * Filled in with where the time went: seconds sampling, and seconds waiting for the verdicts after the last batch
   * sampled (verification overlaps sampling until then).
   */
  timing?: { generate: number; verify: number };
  /**
   * Data-parallel: each rank samples and verifies its contiguous share of the batches (each batch keeps its seed),
   * and every rank resolves to all of them, in order — the rollouts of one process. All ranks make the call with
   * the same records and options.
   */
  group?: ProcessGroup;
}

/** One sampled response; the JSON form of the rollouts file (`prefix-rl rollout`). */
export interface Rollout {
  /** Index of the prompt in the input records, and of this sample among the prompt's samples. */
  prompt_index: number;
  sample_index: number;
  data_source: string;
  /** The prompt as tokens (chat template with the generation prompt) and the response tokens (EOS included). */
  prompt_ids: number[];
  response_ids: number[];
  response: string;
  /** log π(token) of each response token at the sampling temperature. */
  logprobs: number[];
  finish_reason: FinishReason;
  ground_truth: string;
  /** The verifier's verdict: 1 right, 0 otherwise. */
  score: number;
}

/** A rollouts file's row, checked for what the reward models read of it. */
export const RolloutSchema = z.custom<Rollout>(
  (row) => {
    const r = row as Partial<Rollout> | null;
    return (
      typeof r === 'object' &&
      r !== null &&
      Array.isArray(r.prompt_ids) &&
      Array.isArray(r.response_ids) &&
      typeof r.score === 'number' &&
      typeof r.prompt_index === 'number'
    );
  },
  { message: 'needs prompt_index, prompt_ids, response_ids and score' },
);

/** Reads a rollouts file (`prefix-rl rollout`); a bad row stops it with a DataError naming the file and line. */
export async function readRollouts(file: string, options: { vocabSize?: number } = {}): Promise<Rollout[]> {
  const { vocabSize } = options;
  const check = vocabSize === undefined ? undefined : (rollout: Rollout) => outsideVocabulary(rollout, vocabSize);
  const rollouts: Rollout[] = [];
  for await (const rollout of readRecords(file, RolloutSchema, { check })) rollouts.push(rollout);
  return rollouts;
}

/** The first token id of a rollout outside [0, vocabSize), in words; undefined when every id is inside. */
function outsideVocabulary(rollout: Rollout, vocabSize: number): string | undefined {
  for (const field of ['prompt_ids', 'response_ids'] as const) {
    const at = rollout[field].findIndex((id) => id < 0 || id >= vocabSize);
    if (at >= 0) return `${field}[${at}] = ${rollout[field][at]} is outside the model's vocabulary (0 ≤ id < ${vocabSize})`;
  }
  return undefined;
}

/** Rollouts grouped by prompt_index, prompts in order of first appearance. */
export function groupByPrompt(rollouts: readonly Rollout[]): Rollout[][] {
  const groups = new Map<number, Rollout[]>();
  for (const rollout of rollouts) {
    const group = groups.get(rollout.prompt_index);
    if (group) group.push(rollout);
    else groups.set(rollout.prompt_index, [rollout]);
  }
  return [...groups.values()];
}

/**
 * What judges a response to `record`: the controlled task's exact check for its rows, the sandboxed code verifier for
 * code prompts (`ability: code`; the tests are the ground truth, as in Eurus-2-RL's code rows), math otherwise.
 */
export function verifyRequestFor(record: RlRecord, response: string): VerifyRequest {
  const groundTruth = record.reward_model.ground_truth;
  if (record.data_source === TASK_SOURCE) return { kind: 'controlled', response, groundTruth };
  if (record.ability === 'code') return { kind: 'code', response, tests: groundTruth };
  return { kind: 'math', response, groundTruth };
}

/**
 * Samples `samples` responses to each record's prompt (its chat rendered with the generation prompt) and verifies
 * each (verifyRequestFor) on the verifier pool while the next batch samples; a check that overruns its budget scores
 * 0, and one that cannot judge at all (status error: an unreadable ground truth, no sandbox) fails the call, naming
 * the prompt. Rollouts come in prompt order, a prompt's samples together; batch i samples with seed + i·batchSize, so the
 * same inputs and options give the same rollouts.
 */
export async function sampleRollouts(
  model: Pick<CausalLM, 'generate'>,
  tokenizer: Tokenizer,
  records: readonly RlRecord[],
  options: RolloutOptions = {},
): Promise<Rollout[]> {
  const { samples = 1, temperature = 1, topP, maxNewTokens = 256, batchSize = 64, seed = 0, signal, reward } = options;
  if (!Number.isInteger(samples) || samples < 1) throw new Error('samples must be a positive integer');
  const prompts = records.map((record) => tokenizer.encodeChat(record.prompt, { addGenerationPrompt: true }));
  const jobs = records.flatMap((_, prompt) => Array.from({ length: samples }, (_, sample) => ({ prompt, sample })));
  const pool = reward ? undefined : (options.verifier ?? new VerifierPool());
  try {
    const started = performance.now();
    const pending: Promise<Rollout>[] = [];
    let failure: Error | undefined;
    const group = options.group ?? SINGLE_PROCESS;
    const [first, end] = shareOf(Math.ceil(jobs.length / batchSize), group);
    for (let start = first * batchSize; start < Math.min(jobs.length, end * batchSize); start += batchSize) {
      if (failure) throw failure; // a response could not be judged: sample no more
      const batch = jobs.slice(start, start + batchSize);
      const generations = await model.generate(
        batch.map(({ prompt }) => prompts[prompt]),
        { maxNewTokens, temperature, topP, seed: seed + start, signal },
      );
      for (const [i, generation] of generations.entries()) {
        const { prompt, sample } = batch[i];
        const record = records[prompt];
        const response = tokenizer.decode(generation.tokens, { skipSpecialTokens: true });
        const unscored: Omit<Rollout, 'score'> = {
          prompt_index: prompt,
          sample_index: sample,
          data_source: record.data_source,
          prompt_ids: prompts[prompt],
          response_ids: generation.tokens,
          response,
          logprobs: generation.logprobs,
          finish_reason: generation.finishReason,
          ground_truth: record.reward_model.ground_truth,
        };
        const score = reward
          ? Promise.resolve(reward(unscored))
          : pool!.verify(verifyRequestFor(record, response)).then((result) => {
              // A response that could not be judged at all (a ground truth or tests the verifier cannot read, no
              // sandbox) is not a wrong answer: scoring it 0 would train on a made-up label.
              if (result.status === 'error') {
                throw new Error(`prompt ${prompt} (${record.data_source}) could not be verified: ${result.detail ?? 'verifier error'}`);
              }
              return result.status === 'pass' ? 1 : 0;
            });
        const rollout = score.then((value) => ({ ...unscored, score: value }));
        rollout.catch((error: Error) => (failure ??= error)); // handled here; Promise.all below rethrows it
        pending.push(rollout);
      }
      options.onBatch?.(start + batch.length, jobs.length);
    }
    const sampled = performance.now();
    const rollouts = await Promise.all(pending);
    if (options.timing) Object.assign(options.timing, { generate: (sampled - started) / 1000, verify: (performance.now() - sampled) / 1000 });
    return group.worldSize === 1 ? rollouts : (await group.allGatherObjects(rollouts, { signal })).flat();
  } finally {
    if (pool && !options.verifier) await pool.close();
  }
}
