// Row schemas of the public datasets this project reads, with their field names unchanged.
// Objects are loose: a row's extra columns pass through, so real dumps with more fields still load.
import { z } from 'zod';

export const ChatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string(),
});
export type ChatMessage = z.output<typeof ChatMessageSchema>;

/** PRIME-RL/Eurus-2-SFT-Data: one chat per row. */
export const SftRecordSchema = z.looseObject({
  messages: z.array(ChatMessageSchema).min(1),
});
export type SftRecord = z.output<typeof SftRecordSchema>;

/** PRIME-RL/Eurus-2-RL-Data (the verl RL layout): a chat prompt and a rule-checked ground truth. */
export const RlRecordSchema = z.looseObject({
  data_source: z.string(),
  prompt: z.array(ChatMessageSchema).min(1),
  ability: z.string(),
  reward_model: z.looseObject({ style: z.string(), ground_truth: z.string() }),
  // Python writers emit null for a missing struct; treat it as absent.
  extra_info: z
    .record(z.string(), z.unknown())
    .nullish()
    .transform((value) => value ?? undefined),
});
export type RlRecord = z.output<typeof RlRecordSchema>;

const idLike = z.union([z.string(), z.number()]).nullish();

/**
 * Problem/answer evaluation sets: MATH-500, Minerva, AIME, AMC, OlympiadBench style rows.
 * Normalised to one shape: `question` becomes `problem`, a numeric answer becomes its string,
 * `unique_id` stands in for a missing `id`.
 */
export const EvalProblemSchema = z
  .looseObject({
    problem: z.string().optional(),
    question: z.string().optional(),
    answer: z.union([z.string(), z.number()]),
    solution: z.string().nullish(),
    id: idLike,
    unique_id: idLike,
    level: z.union([z.string(), z.number()]).nullish(),
    subject: z.string().nullish(),
  })
  .refine((row) => row.problem !== undefined || row.question !== undefined, {
    message: 'needs a "problem" or a "question" string',
    path: ['problem'],
  })
  .transform((row) => {
    const id = row.id ?? row.unique_id;
    return {
      problem: (row.problem ?? row.question) as string,
      answer: String(row.answer),
      ...(row.solution != null && { solution: row.solution }),
      ...(id != null && { id: String(id) }),
      ...(row.level != null && { level: row.level }),
      ...(row.subject != null && { subject: row.subject }),
    };
  });
export type EvalProblem = z.output<typeof EvalProblemSchema>;

/** Qwen/ProcessBench: solution steps and the index of the first wrong step (-1 if all are right). */
export const ProcessBenchRecordSchema = z
  .looseObject({
    id: z.string(),
    generator: z.string().optional(),
    problem: z.string(),
    steps: z.array(z.string()).min(1),
    label: z.int(),
    final_answer_correct: z.boolean().optional(),
  })
  .superRefine((row, ctx) => {
    if (row.label < -1 || row.label >= row.steps.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['label'],
        message: `must be -1 or a step index in 0..${row.steps.length - 1}, got ${row.label}`,
      });
    }
  });
export type ProcessBenchRecord = z.output<typeof ProcessBenchRecordSchema>;

/** The dataset kinds `loadDataset` and `prefix-rl data validate --kind` know. */
export const DATASET_SCHEMAS = {
  sft: SftRecordSchema,
  rl: RlRecordSchema,
  eval: EvalProblemSchema,
  processbench: ProcessBenchRecordSchema,
} as const;
export type DatasetKind = keyof typeof DATASET_SCHEMAS;
export type DatasetRecord<K extends DatasetKind> = z.output<(typeof DATASET_SCHEMAS)[K]>;
export const DATASET_KINDS = Object.keys(DATASET_SCHEMAS) as DatasetKind[];
