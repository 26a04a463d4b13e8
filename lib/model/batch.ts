// Padded batches of token sequences: the input layout of CausalLM.forward and tokenLogprobs.
import { Tensor, type DeviceName } from '../tensor/tensor.js';

export interface PaddedBatch {
  /** [B, T] int64, T the longest sequence. */
  inputIds: Tensor;
  /** [B, T] int64: 1 on tokens, 0 on padding. */
  attentionMask: Tensor;
}

export interface PadOptions {
  /** Token id written at padding positions (default 0; the mask, not this id, marks padding). */
  padId?: number;
  /** Where the padding goes (default right; generation prompts are usually left-padded). */
  side?: 'left' | 'right';
  /** Where the tensors are made (default cpu; a model moves its inputs itself, objectives need them beside the logits). */
  device?: DeviceName;
}

/** Pads `sequences` (token ids, at least one token each) into one batch with its attention mask. */
export function padBatch(sequences: readonly (readonly number[])[], options: PadOptions = {}): PaddedBatch {
  if (sequences.length === 0) throw new RangeError('padBatch needs at least one sequence');
  const { padId = 0, side = 'right', device } = options;
  const time = Math.max(...sequences.map((s) => s.length));
  if (time === 0) throw new RangeError('padBatch needs sequences with at least one token');
  const ids = new BigInt64Array(sequences.length * time).fill(BigInt(padId));
  const mask = new BigInt64Array(sequences.length * time);
  sequences.forEach((sequence, row) => {
    const start = row * time + (side === 'left' ? time - sequence.length : 0);
    sequence.forEach((token, i) => {
      if (!Number.isInteger(token) || token < 0) throw new RangeError(`sequence ${row}: token ${i} is ${token}, not a token id`);
      ids[start + i] = BigInt(token);
      mask[start + i] = 1n;
    });
  });
  const shape = [sequences.length, time];
  return { inputIds: Tensor.from(ids, shape, { device }), attentionMask: Tensor.from(mask, shape, { device }) };
}
