// Policy evaluation as the paper's Table 5: avg@k of sampled, verified answers on benchmark files, per file and
// averaged over them. A file is in the eval layout (problem + answer rows: MATH-500, AMC, Minerva, OlympiadBench,
// AIME) or the RL layout (Eurus-2-RL's prompt + reward_model.ground_truth, e.g. the controlled task's rl-test.jsonl);
// the layout is read from its first row.
import { basename } from 'node:path';
import { z } from 'zod';
import { DataError } from '../data/errors.js';
import { loadDataset, readRecords } from '../data/records.js';
import type { EvalProblem, RlRecord } from '../data/schemas.js';
import type { CausalLM } from '../model/index.js';
import { groupByPrompt, sampleRollouts, type RolloutOptions } from '../rollout/rollouts.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { VerifierPool } from '../verify/pool.js';
import { accuracyOf } from './accuracy.js';

/** Appended to an eval-layout problem (after a blank line): the instruction the math graders' answers are read under. */
export const EVAL_INSTRUCTION = 'Please reason step by step, and put your final answer within \\boxed{}.';

export type EvalLayout = 'eval' | 'rl';

/** Eval-layout problems as RL records: the problem (and the instruction) as the user turn, the answer as ground truth. */
export function evalProblemRecords(problems: readonly EvalProblem[], source: string, instruction = EVAL_INSTRUCTION): RlRecord[] {
  return problems.map((problem) => ({
    data_source: source,
    prompt: [{ role: 'user' as const, content: instruction ? `${problem.problem}\n\n${instruction}` : problem.problem }],
    ability: 'math',
    reward_model: { style: 'rule', ground_truth: problem.answer },
    extra_info: problem.id === undefined ? undefined : { id: problem.id },
  }));
}

/** The layout of a benchmark file, from its first row; an empty file or a row of neither layout is a DataError. */
export async function evalFileLayout(file: string): Promise<EvalLayout> {
  for await (const row of readRecords(file, z.unknown())) {
    const keys = typeof row === 'object' && row !== null ? Object.keys(row) : [];
    if (keys.includes('prompt') && keys.includes('reward_model')) return 'rl';
    if (keys.includes('problem') || keys.includes('question')) return 'eval';
    throw new DataError(
      file,
      undefined,
      'its first row is neither an eval row (problem or question, and answer: MATH-500, AMC, …) nor an RL row (prompt, reward_model.ground_truth)',
    );
  }
  throw new DataError(file, undefined, 'holds no rows');
}

export interface Benchmark {
  /** The file's name without its extension. */
  name: string;
  records: RlRecord[];
}

/** A benchmark file as RL records (eval-layout rows through evalProblemRecords, their data_source the file's name). */
export async function loadBenchmark(file: string, instruction = EVAL_INSTRUCTION): Promise<Benchmark> {
  const name = basename(file).replace(/\.(jsonl|parquet)$/, '');
  const layout = await evalFileLayout(file);
  return { name, records: layout === 'rl' ? await loadDataset('rl', file) : evalProblemRecords(await loadDataset('eval', file), name, instruction) };
}

export interface BenchmarkReport {
  name: string;
  prompts: number;
  samples: number;
  /** avg@k: the mean verdict over every sample. */
  accuracy: number;
  /** pass@k: the share of prompts with at least one right sample. */
  passAtK: number;
}

export interface PolicyEvalReport {
  benchmarks: BenchmarkReport[];
  /** The mean of the benchmarks' avg@k (Table 5's average column). */
  average: number;
}

/**
 * avg@k and pass@k of `model` on each benchmark (records as loadBenchmark reads them); sampling as `options` says
 * (the paper: k = 8 at T 0.6, top-p 0.95). One verifier pool serves every benchmark.
 */
export async function evaluatePolicy(
  model: CausalLM,
  tokenizer: Tokenizer,
  benchmarks: readonly Benchmark[],
  options: RolloutOptions = {},
): Promise<PolicyEvalReport> {
  if (benchmarks.length === 0) throw new Error('policy evaluation needs at least one benchmark');
  for (const { name, records } of benchmarks) if (records.length === 0) throw new Error(`benchmark ${name} holds no prompts`);
  const verifier = options.verifier ?? new VerifierPool();
  try {
    const reports: BenchmarkReport[] = [];
    for (const { name, records } of benchmarks) {
      const rollouts = await sampleRollouts(model, tokenizer, records, { ...options, verifier });
      const groups = groupByPrompt(rollouts);
      const { accuracy, prompts, samples } = accuracyOf(rollouts);
      reports.push({ name, prompts, samples, accuracy, passAtK: groups.filter((g) => g.some((r) => r.score === 1)).length / groups.length });
    }
    return { benchmarks: reports, average: reports.reduce((sum, r) => sum + r.accuracy, 0) / reports.length };
  } finally {
    if (!options.verifier) await verifier.close();
  }
}
