// The config.json of a Qwen3-shaped model with random weights, for the benchmarks: by default query heads of 64
// covering the hidden width over half as many KV heads, SwiGLU 3 × hidden, a tied head.
export function qwen3Shaped(shape: {
  hidden: number;
  layers: number;
  vocab: number;
  headDim?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  maxPositions?: number;
}): Record<string, unknown> {
  const headDim = shape.headDim ?? 64;
  const heads = shape.heads ?? shape.hidden / headDim;
  return {
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate ?? 3 * shape.hidden,
    num_hidden_layers: shape.layers,
    num_attention_heads: heads,
    num_key_value_heads: shape.kvHeads ?? heads / 2,
    head_dim: headDim,
    vocab_size: shape.vocab,
    max_position_embeddings: shape.maxPositions ?? 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}
