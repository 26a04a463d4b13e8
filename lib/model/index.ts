export {
  loadModel,
  initModel,
  CausalLM,
  type InitModelOptions,
  type FinishReason,
  type Generation,
  type GenerateOptions,
  type ForwardOptions,
  type LogitsOptions,
  type TokenLogprobsOptions,
  type LoadModelOptions,
  type ModelDType,
  type SaveModelOptions,
} from './causal-lm.js';
export {
  parseModelConfig,
  readModelConfig,
  ModelConfigError,
  MODEL_TYPES,
  type ModelConfig,
  type ModelType,
  type Llama3RopeScaling,
} from './config.js';
export {
  checkpointFiles,
  writeCheckpoint,
  planShards,
  CheckpointError,
  COMPANION_FILES,
  DEFAULT_MAX_SHARD_BYTES,
  type WriteCheckpointOptions,
} from './checkpoint.js';
export { readSafetensors, writeSafetensors, type SafetensorsContents } from './safetensors.js';
export { padBatch, type PaddedBatch, type PadOptions } from './batch.js';
export { AdapterError, LORA_PROJECTIONS, LORA_TARGETS, readAdapterConfig, type LoraConfig, type LoraOptions, type LoraTarget } from './lora.js';
export {
  AdamW,
  clipGradNorm,
  constantSchedule,
  linearSchedule,
  cosineSchedule,
  lrSchedule,
  LR_SCHEDULES,
  type AdamWOptions,
  type LrSchedule,
  type LrScheduleName,
  type ScheduleOptions,
} from './optim.js';
export { withModels } from './with-models.js';
export { checkDevice, DEVICE_PATTERN, loadOptions, MODEL_DTYPES, TRAINING_DTYPES, type Placement, type TrainingDType } from './placement.js';
