// Verifiers: math answers, the controlled task's integer answers, and sandboxed code. See docs/VERIFY.md.
export * from './types.js';
export { verify, type VerifyOptions } from './verify.js';
export { VerifierPool, type VerifierPoolOptions } from './pool.js';
export { verifyMath } from './math/verify.js';
export { mathAnswersEqual, RELATIVE_TOLERANCE } from './math/equal.js';
export { extractMathAnswer, lastBoxed } from './math/extract.js';
export { normalizeAnswer, type NormalizedAnswer } from './math/normalize.js';
export { verifyControlled } from './controlled.js';
export { verifyCode, extractProgram, outputsMatch, type CodeVerifierOptions } from './code/verify.js';
export { CODE_LANGUAGES, codeTestsSchema, parseCodeTests, type CodeLanguage, type CodeTests, type ParsedCodeTests } from './code/tests.js';
export {
  DEFAULT_SANDBOX_LIMITS,
  runSandboxed,
  sandboxContainment,
  type Containment,
  type SandboxLimits,
  type SandboxOutcome,
  type SandboxRun,
} from './code/sandbox.js';
