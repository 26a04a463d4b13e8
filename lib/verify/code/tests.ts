// What a code item is tested with, as accepted from requests and JSON lines.
import { z } from 'zod';

export const CODE_LANGUAGES = ['python', 'javascript'] as const;
export type CodeLanguage = (typeof CODE_LANGUAGES)[number];

const languageSchema = z.enum(CODE_LANGUAGES).default('python');

/** stdin/stdout cases (each a separate run) and/or assert-style test code appended to the program. */
const canonicalSchema = z
  .strictObject({
    language: languageSchema,
    stdio: z.array(z.strictObject({ input: z.string(), output: z.string() })).default([]),
    assert: z.string().optional(),
  })
  .refine((tests) => tests.stdio.length > 0 || tests.assert !== undefined, 'tests need stdio cases or assert code');

/** The APPS / TACO / Eurus-2 form `{"inputs": [...], "outputs": [...]}` of stdin/stdout cases. */
const inputsOutputsSchema = z
  .strictObject({ language: languageSchema, inputs: z.array(z.string()).min(1), outputs: z.array(z.string()) })
  .refine((tests) => tests.inputs.length === tests.outputs.length, 'inputs and outputs differ in length')
  .transform(({ language, inputs, outputs }) => ({
    language,
    stdio: inputs.map((input, index) => ({ input, output: outputs[index] })),
    assert: undefined,
  }));

export const codeTestsSchema = z.union([canonicalSchema, inputsOutputsSchema]);

/** Tests as given: `{stdio: [{input, output}], assert?, language?}` or `{inputs, outputs, language?}`. */
export type CodeTests = z.input<typeof codeTestsSchema>;
/** Tests in their one checked form. */
export type ParsedCodeTests = z.output<typeof codeTestsSchema>;

/** Checks tests (or a JSON string of them) and brings them to the one form; throws a readable error. */
export function parseCodeTests(tests: unknown): ParsedCodeTests {
  const value = typeof tests === 'string' ? JSON.parse(tests) : tests;
  const parsed = codeTestsSchema.safeParse(value);
  if (!parsed.success) throw new Error(`invalid code tests: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** How many sandboxed runs the tests take at most: one per stdio case, one for the assert code. */
export function testRunCount(tests: ParsedCodeTests): number {
  return tests.stdio.length + (tests.assert === undefined ? 0 : 1);
}
