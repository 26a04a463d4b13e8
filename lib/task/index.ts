export {
  OPS,
  VALUE_MIN,
  VALUE_MAX,
  DEFAULT_TASK_OPTIONS,
  resolveTaskOptions,
  applyOp,
  generateProblem,
  problemValues,
  problemAnswer,
  type Op,
  type Operation,
  type Problem,
  type TaskOptions,
} from './problem.js';
export { correctTrace, injectError, type Trace, type TraceStep, type InjectedError } from './trace.js';
export {
  TRACE_FORMATS,
  RESPONSE_STYLES,
  renderPrompt,
  traceStepTexts,
  layoutSteps,
  renderTrace,
  renderSolution,
  type TraceFormat,
  type ResponseStyle,
  type LaidOutResponse,
} from './render.js';
export { parsePrompt, firstWrongStep } from './check.js';
export {
  TASK_SOURCE,
  taskExample,
  makeSftRecords,
  makeRlRecords,
  makeProcessBenchSets,
  type TaskExample,
  type TaskProcessBenchRecord,
} from './datasets.js';
export {
  TASK_SPECIAL_TOKENS,
  TASK_CHARS,
  TASK_VOCAB,
  TASK_MAX_LENGTH,
  makeTaskTokenizer,
  writeTaskTokenizer,
  type TaskTokenizerFiles,
} from './tokenizer.js';
export { writeTaskData, type MakeTaskDataOptions, type WrittenFile } from './make.js';
