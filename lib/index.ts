// prefix-rl's public API: the names users call. Everything else is one layer's subpath away
// (`prefix-rl/tensor`, `prefix-rl/model`, `prefix-rl/algorithms`, …: package.json "exports"; docs/API.md lists them).

// tensors, scopes, the runtime
export { Tensor, tidy, liveTensors, abortError, type AsyncOptions, type DType, type DeviceName, type TensorOptions } from './tensor/index.js';
export { environmentReport, setNumThreads, releaseBufferCache, setBufferCacheLimit, type EnvironmentReport } from './native/runtime.js';

// data-parallel training: the job's process group (c10d Gloo, and NCCL for CUDA ranks)
export {
  defaultBackend,
  initProcessGroup,
  launchEnv,
  SINGLE_PROCESS,
  type DistributedBackend,
  type JoinOptions,
  type LaunchEnv,
  type ProcessGroup,
  type ReduceOp,
} from './distributed/index.js';

// the fused objectives
export {
  tokenLogprobs,
  headLogprobs,
  headLogprobsAndEntropy,
  tokenEntropy,
  prefixValues,
  ipvrmOffline,
  ipvrmOnline,
  implicitPrmCe,
  implicitPrmOnline,
  dpoRm,
  dpoOnline,
  distrlCandidates,
  distrlTd,
  distrlLoss,
  listObjectives,
  headInputFields,
  type Conventions,
  type HeadInput,
  type HeadLora,
} from './ops/objectives.js';

// models and tokenizers
export {
  loadModel,
  initModel,
  CausalLM,
  padBatch,
  type LoadModelOptions,
  type InitModelOptions,
  type GenerateOptions,
  type Generation,
} from './model/index.js';
export { AdamW, clipGradNorm, constantSchedule, linearSchedule, cosineSchedule, type AdamWOptions, type LrSchedule } from './model/index.js';
export { ModelConfigError, CheckpointError, AdapterError, type ModelConfig, type LoraOptions } from './model/index.js';
export { loadTokenizer, Tokenizer, TokenizerError, type ChatTurn } from './tokenizer/index.js';

// data
export {
  loadDataset,
  readRecords,
  writeJsonl,
  writeParquet,
  DataError,
  type SftRecord,
  type RlRecord,
  type EvalProblem,
  type ProcessBenchRecord,
} from './data/index.js';

// verifiers
export {
  verify,
  VerifierPool,
  verifyMath,
  verifyCode,
  verifyControlled,
  type VerifyKind,
  type VerifyRequest,
  type VerifyResult,
} from './verify/index.js';

// rollouts, training and evaluation entry points
export { sampleRollouts, readRollouts, groupByPrompt, type Rollout, type RolloutOptions } from './rollout/rollouts.js';
export { sft, sftExample, type SftOptions, type SftStep } from './train/sft.js';
export {
  outcomePairs,
  referenceLogprobs,
  trainRewardModel,
  RM_METHODS,
  type RmMethod,
  type RmPair,
  type RmTrainOptions,
  type RmStep,
} from './train/rm.js';
export { trainRl, type RlModels, type RlRunOptions, type RlStep } from './train/rl.js';
export { sampledAccuracy, accuracyOf, type AccuracyReport } from './eval/accuracy.js';
export { evaluatePolicy, loadBenchmark, type Benchmark, type PolicyEvalReport } from './eval/policy.js';
export {
  evaluateStepVerification,
  evaluateBestOfN,
  averageProcessBench,
  stepSequences,
  type StepVerificationReport,
  type BonReport,
} from './eval/reward-model.js';
export { evaluateProcessBench, STEP_SCORE_MODES, type StepScoreMode } from './eval/processbench.js';
export {
  scoreSteps,
  rerank,
  type ImplicitRewardModel,
  type Solution,
  type ScoreStepsOptions,
  type StepScoreReport,
  type RerankOptions,
} from './eval/score.js';

// configs
export { loadRlConfig, resolveRlConfig, RlConfigSchema, RL_PRESETS, RL_PRESET_NAMES, type RlConfig, type RlConfigInput } from './config/rl.js';
export { resolveSftConfig, type SftConfig } from './config/sft.js';
export { resolveRmConfig, type RmConfig } from './config/rm.js';

// runs: the training stages with run folders, checkpoints, resume and metrics; reports
export { runSft, runRm, runRl, METRICS, type RunSftOptions, type RunRmOptions, type RunRlOptions, type MetricsRow } from './run/index.js';
export { readRuns, renderReport } from './report/index.js';
