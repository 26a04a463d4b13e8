// What the model commands that read JSON lines on stdin share (logprobs, generate): the checkpoint flags, parsing each
// line with a schema so that a bad line stops the command with its line number, and grouping lines into batches.
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { MAX_LINE_LENGTH, readLines } from '../data/jsonl.js';
import { PLACEMENT_OPTIONS } from './run-flags.js';

/** --model, --dtype and --device of the commands that load a checkpoint. */
export const modelOptions = {
  model: { type: 'string', demandOption: true, describe: 'Hugging Face checkpoint folder (Qwen3 or Llama, safetensors)' },
  ...PLACEMENT_OPTIONS,
} as const;

export interface JsonLine<T> {
  value: T;
  /** Throws `stdin:N: message` for this line. */
  fail: (message: string) => never;
}

/**
 * Each non-blank line of `input` parsed by `schema`; a line that is not JSON, not of the schema or longer than
 * `maxLineLength` characters throws `stdin:N: …`.
 */
export async function* jsonLines<S extends z.ZodType>(
  input: Readable,
  schema: S,
  maxLineLength = MAX_LINE_LENGTH,
): AsyncGenerator<JsonLine<z.output<S>>> {
  let lineNumber = 0;
  for await (const line of readLines(input, maxLineLength)) {
    lineNumber += 1;
    const at = lineNumber;
    const fail = (message: string): never => {
      throw new Error(`stdin:${at}: ${message}`);
    };
    const text = line ?? fail(`line longer than ${maxLineLength} characters, the most a line may hold`);
    if (text.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      fail(`not JSON (${(err as Error).message})`);
    }
    const result = schema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0];
      fail(issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message);
    }
    yield { value: result.data as z.output<S>, fail };
  }
}

/** Throws through `fail` when a token id is outside the model's vocabulary. */
export function checkVocabulary(tokens: readonly number[], vocabSize: number, fail: (message: string) => never): void {
  const outOfRange = tokens.find((token) => token >= vocabSize);
  if (outOfRange !== undefined) fail(`token ${outOfRange} is outside the vocabulary (size ${vocabSize})`);
}

/** The items of `items` in arrays of `size` (the last one shorter), as they arrive. */
export async function* inBatches<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
