// What the training loops (SFT, reward models) share: sequences with a scored region, their mask, and a model whose
// parameters train under AdamW for the length of a loop.
import { AdamW, type AdamWOptions } from '../model/optim.js';
import type { CausalLM } from '../model/causal-lm.js';
import { Tensor } from '../tensor/index.js';

/** A token sequence whose tokens from `lossStart` on are scored: a response after its prompt. */
export interface ScoredSequence {
  tokens: number[];
  lossStart: number;
}

/**
 * [B, T-1] float32 in tokenLogprobs' layout (position j holds token j + 1): 1 where that token is scored (index ≥
 * lossStart, not padding), 0 elsewhere. `time` is the padded batch's length T.
 */
export function scoredMask(batch: readonly ScoredSequence[], time: number): Tensor {
  const mask = new Float32Array(batch.length * (time - 1));
  batch.forEach((sequence, row) => {
    for (let t = Math.max(sequence.lossStart, 1); t < sequence.tokens.length; t++) mask[row * (time - 1) + t - 1] = 1;
  });
  return Tensor.from(mask, [batch.length, time - 1]);
}

/**
 * Runs `train` with the trainable parameters of `model` requiring grad and an AdamW over them: the LoRA adapter's when
 * one is attached (the base weights stay frozen), else every parameter. Afterwards drops the gradients and restores
 * each parameter's requiresGrad, so the model is for inference again.
 */
export async function withOptimizer<T>(
  model: CausalLM,
  options: AdamWOptions,
  train: (optimizer: AdamW, parameters: Map<string, Tensor>) => Promise<T>,
): Promise<T> {
  const parameters = model.lora ? model.loraParameters() : model.parameters();
  const requiredGrad = [...parameters.values()].map((parameter) => parameter.requiresGrad);
  for (const parameter of parameters.values()) parameter.requiresGrad = true;
  const optimizer = new AdamW(parameters, options);
  try {
    return await train(optimizer, parameters);
  } finally {
    await optimizer.zeroGrad();
    [...parameters.values()].forEach((parameter, i) => {
      parameter.requiresGrad = requiredGrad[i];
      parameter.dispose();
    });
  }
}
