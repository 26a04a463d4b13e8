// The raw addon surface of the model core (native/model/binding.cc). Only lib/model uses it, through the typed
// CausalLM and safetensors wrappers.
import { addon, type DType, type NativeCancelToken, type NativeTensor } from '../native/addon.js';
import type { ModelConfig } from './config.js';
import type { LoraConfig } from './lora.js';

export interface NativeForwardOptions {
  checkpoint?: boolean;
  noGrad?: boolean;
}

export interface NativeSamplingOptions {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  eosTokenIds?: number[];
  stopSequences?: number[][];
  topLogprobs?: number;
}

/** CPU tensors: tokens/logprobs [B, N], lengths/finishReasons [B] (0 length, 1 eos, 2 stop), top* [B, N, K]. */
export interface NativeGeneration {
  tokens: NativeTensor;
  logprobs: NativeTensor;
  lengths: NativeTensor;
  finishReasons: NativeTensor;
  topTokens?: NativeTensor;
  topLogprobs?: NativeTensor;
}

export interface NativeModel {
  readonly dtype: DType;
  readonly device: string;
  readonly isDisposed: boolean;
  forward(inputIds: NativeTensor, attentionMask: NativeTensor | null, options: NativeForwardOptions, cancel?: NativeCancelToken): Promise<NativeTensor>;
  tokenLogprobs(inputIds: NativeTensor, attentionMask: NativeTensor | null, options: NativeForwardOptions, cancel?: NativeCancelToken): Promise<NativeTensor>;
  generate(promptIds: NativeTensor, promptMask: NativeTensor | null, options: NativeSamplingOptions, cancel?: NativeCancelToken): Promise<NativeGeneration>;
  /** Every parameter by its Hugging Face name; the tensors share storage with the model. */
  parameters(): Record<string, NativeTensor>;
  /** The LoRA adapter's parameters by PEFT name (empty without one). */
  loraParameters(): Record<string, NativeTensor>;
  addLora(config: LoraConfig, seed: number, cancel?: NativeCancelToken): Promise<void>;
  loadLora(config: LoraConfig, files: string[], cancel?: NativeCancelToken): Promise<void>;
  mergeLora(cancel?: NativeCancelToken): Promise<void>;
  removeLora(cancel?: NativeCancelToken): Promise<void>;
  dispose(): void;
}

export interface NativeModelAddon {
  loadModel(config: ModelConfig, files: string[], options: { dtype: DType; device: string }, cancel?: NativeCancelToken): Promise<NativeModel>;
  initModel(
    config: ModelConfig,
    options: { dtype: DType; device: string; seed: number; initializerRange: number; paddingIdx: number },
    cancel?: NativeCancelToken,
  ): Promise<NativeModel>;
  readSafetensors(path: string, cancel?: NativeCancelToken): Promise<{ tensors: Record<string, NativeTensor>; metadata: Record<string, string> }>;
  writeSafetensors(path: string, tensors: Record<string, NativeTensor>, metadata: Record<string, string>, cancel?: NativeCancelToken): Promise<void>;
}

export function modelAddon(): NativeModelAddon {
  return addon() as unknown as NativeModelAddon;
}
