// Where a command's models live and what they compute in: the `device` and `dtype` keys of every stage config and
// the --device / --dtype flags of every model command, turned into load options in one place.
import type { DeviceName } from '../tensor/tensor.js';
import type { LoadModelOptions, ModelDType } from './causal-lm.js';

/** Compute dtypes training supports: float32, or bfloat16 mixed precision (float16 would need loss scaling). */
export const TRAINING_DTYPES = ['float32', 'bfloat16'] as const;
export type TrainingDType = (typeof TRAINING_DTYPES)[number];

/** Every dtype a model can compute in (inference commands take these). */
export const MODEL_DTYPES: readonly ModelDType[] = ['float32', 'bfloat16', 'float16', 'float64'];

/** cpu, cuda (the current GPU) or cuda:N. */
export const DEVICE_PATTERN = /^(cpu|cuda(:\d+)?)$/;

/** Where a model lives and what it computes in: a stage config's `device` and `dtype`, or a command's flags. */
export interface Placement {
  device: string;
  dtype: ModelDType;
}

/**
 * Load options for a model in `placement`. A model that trains keeps float32 master weights under a reduced
 * dtype (mixed precision: bf16 compute, float32 gradients, AdamW moments and updates); a frozen one (π_ref, the
 * sampler, an evaluated checkpoint) is stored in the dtype itself, which halves its memory. A LoRA policy's base
 * is frozen: only its adapter trains, and adapters are float32 under a reduced dtype either way.
 */
export function loadOptions(placement: Placement, role: 'trains' | 'frozen'): LoadModelOptions {
  return {
    device: checkDevice(placement.device, 'device'),
    dtype: placement.dtype,
    masterWeights: role === 'trains' && placement.dtype !== 'float32',
  };
}

/** `device`, checked: a malformed name fails here, naming the flag, rather than inside the first load. */
export function checkDevice(device: string, what = '--device'): DeviceName {
  if (!DEVICE_PATTERN.test(device)) throw new Error(`${what} must be cpu, cuda or cuda:N, got '${device}'`);
  return device as DeviceName;
}
