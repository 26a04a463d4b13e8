// A decoder-only transformer covering the Qwen3 and Llama(-3) families of Hugging Face transformers: token embedding,
// pre-norm blocks of grouped-query attention with rotary positions and a SwiGLU MLP, a final RMSNorm and the LM head.
// Parameters carry their Hugging Face names, so checkpoints load and save without renaming.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/safetensors.h"
#include "ops/head_logprobs.h"

namespace prefix_rl {

// The decoder's settings, each one line: type, C++ name, and the key under which lib/model/config.ts hands it over
// (its zod schema reads config.json). The binding (model/model_handle.cc) fills DecoderConfig from this list, so a new
// model flag is a line here, its use in decoder.cc, and its field in the schema.
//   qk_norm:        Qwen3: RMSNorm over each head of q and k before RoPE
//   attention_bias: biases on the q/k/v/o projections;  mlp_bias: biases on gate/up/down
//   rope_scaling:   {"rope_type": "llama3", ...} of Llama 3.1+ (null: none)
#define PREFIX_RL_DECODER_FIELDS(X)                                \
  X(int64_t, vocab_size, "vocabSize")                              \
  X(int64_t, hidden_size, "hiddenSize")                            \
  X(int64_t, intermediate_size, "intermediateSize")                \
  X(int64_t, num_layers, "numLayers")                              \
  X(int64_t, num_heads, "numHeads")                                \
  X(int64_t, num_kv_heads, "numKvHeads")                           \
  X(int64_t, head_dim, "headDim")                                  \
  X(double, rms_norm_eps, "rmsNormEps")                            \
  X(double, rope_theta, "ropeTheta")                               \
  X(std::optional<Llama3RopeScaling>, rope_scaling, "ropeScaling") \
  X(bool, tie_word_embeddings, "tieWordEmbeddings")                \
  X(bool, qk_norm, "qkNorm")                                       \
  X(bool, attention_bias, "attentionBias")                         \
  X(bool, mlp_bias, "mlpBias")

// Llama 3 rope scaling: low frequencies are slowed by `factor`, high ones kept, and the band between them interpolated.
#define PREFIX_RL_LLAMA3_ROPE_FIELDS(X)         \
  X(double, factor, "factor")                   \
  X(double, low_freq_factor, "lowFreqFactor")   \
  X(double, high_freq_factor, "highFreqFactor") \
  X(int64_t, original_max_position_embeddings, "originalMaxPositionEmbeddings")

#define PREFIX_RL_DECLARE_FIELD(type, name, key) type name{};
struct Llama3RopeScaling {
  PREFIX_RL_LLAMA3_ROPE_FIELDS(PREFIX_RL_DECLARE_FIELD)
};
struct DecoderConfig {
  PREFIX_RL_DECODER_FIELDS(PREFIX_RL_DECLARE_FIELD)
};
#undef PREFIX_RL_DECLARE_FIELD

// A LoRA adapter (PEFT's LoraConfig): each targeted projection W gains ΔW = scale · B A with A [rank, in] and
// B [out, rank]; scale = alpha / rank, or alpha / √rank with rsLoRA. On lm_head the adapter changes the output
// projection only: with tied embeddings the input embedding stays as it is (as PEFT does).
struct LoraConfig {
  int64_t rank;
  double alpha;
  bool rslora;
  std::vector<std::string> target_modules;  // among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head
};

// Keys and values of the positions a generation has seen, so that each new token costs one position's forward.
struct KvCache {
  std::vector<at::Tensor> keys, values;  // per layer [B, kv_heads, capacity, head_dim], model dtype
  at::Tensor valid;                      // [B, capacity] bool: which cached positions are tokens (not padding)
  int64_t length = 0;                    // positions filled so far
};

class Decoder : public std::enable_shared_from_this<Decoder> {
 public:
  // Allocates uninitialized parameters on `device`; load them with load_parameters(parameters(), ...). The model
  // computes in `dtype`. `master_weights` (mixed precision, as FSDP does it): with a bfloat16/float16 `dtype` the
  // parameters are stored in float32 and cast to `dtype` where they are used, so gradients and optimizer updates
  // happen in float32. Without it the parameters are stored in `dtype`. A LoRA adapter is always stored in float32
  // under a reduced-precision `dtype` (PEFT's autocast_adapter_dtype).
  // Construct it with std::make_shared: checkpointed layers keep the decoder alive until their backward has run.
  Decoder(const DecoderConfig& config, at::ScalarType dtype, at::Device device, bool master_weights = false);

  // How many parameter tensors the constructor makes for `config` (parameters().size()), from the config alone.
  static int64_t parameter_count(const DecoderConfig& config);

  const DecoderConfig& config() const { return config_; }
  // The compute dtype (activations, logits, the KV cache).
  at::ScalarType dtype() const { return dtype_; }
  // The dtype the parameters are stored (and saved) in.
  at::ScalarType parameter_dtype() const { return parameter_dtype_; }
  at::Device device() const { return device_; }
  // Every parameter once, by its Hugging Face name (a tied LM head is the embedding and is not listed twice). A copy:
  // the JS thread reads the lists (ModelHandle.parameters) while the compute thread may be changing them (LoRA).
  NamedTensors parameters() const {
    std::lock_guard<std::mutex> lock(lists_mutex_);
    return parameters_;
  }

  // input_ids [B, T] integers, attention_mask [B, T] (1 = token, 0 = padding; undefined = no padding) → logits
  // [B, T, V] in the model dtype. Positions count attended tokens only, so left- and right-padded rows give the same
  // logits as their unpadded sequences; logits at padding positions are finite but meaningless.
  // `checkpoint`: activation checkpointing while parameters require grad. Each layer keeps only its input, and the
  // backward pass recomputes its activations (one more forward per layer), as torch.utils.checkpoint does.
  // `logits_start` / `logits_length` (-1: to the end): the LM head runs on those positions only, giving [B, length,
  // V] — an RL step's response logits without the prompt's, and contiguous, so no [B, R, V] slice is copied later.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint = false, int64_t logits_start = 0,
                     int64_t logits_length = -1) const;

  // The final hidden states (after the last norm) [B, length, hidden] at the positions forward() gives logits for:
  // the LM head's input, for the fused head (ops/head_logprobs.h), which never builds the [B, length, V] logits.
  at::Tensor final_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint = false, int64_t start = 0,
                          int64_t length = -1) const;
  // The LM head's weight [V, hidden] in the compute dtype (the embedding when tied): with master weights a
  // differentiable cast while a graph is recorded, so gradients reach the float32 parameter.
  at::Tensor head_weight() const { return compute(head_.weight); }
  // With a LoRA on lm_head, its low-rank term for `hidden` (HeadLora: scale · hidden · Aᵀ and B, differentiable);
  // without one, undefined. The fused head takes it beside head_weight().
  HeadLora head_lora(const at::Tensor& hidden) const;

  // log p(input_ids[:, t+1] | input_ids[:, ..t]) as [B, T-1] float32; 0 where the token is padding or the first of its row.
  // `fused_head`: straight from the hidden states through the fused LM head (ops/head_logprobs.h), never building
  // [B, T, V] logits; otherwise the head's logits, then the fused gather (the path kept for comparison).
  at::Tensor token_logprobs(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint = false, bool fused_head = true) const;

  // Checks input_ids [B, T] and attention_mask [B, T] and moves them to the model device: ids as int64, the mask as
  // bool (all true when undefined).
  std::pair<at::Tensor, at::Tensor> prepare(const at::Tensor& input_ids, const at::Tensor& attention_mask) const;

  // Adds a LoRA adapter initialized as PEFT does (A uniform in ±1/√in from `seed`, B zero), so the outputs do not
  // change until it is trained or loaded. Its parameters do not require grad until the caller says so.
  void add_lora(const LoraConfig& config, uint64_t seed);
  // The adapter's parameters under PEFT's saved names (base_model.model.<module>.lora_A.weight, …).
  NamedTensors lora_parameters() const {
    std::lock_guard<std::mutex> lock(lists_mutex_);
    return lora_parameters_;
  }
  // Folds the adapter into the weights (W += scale · B A) and removes it. A LoRA on a tied head unties it: the head
  // becomes a parameter of its own (lm_head.weight, config tie_word_embeddings false) and the embedding is unchanged.
  void merge_lora();
  void remove_lora();

  // An empty cache for `batch` rows and up to `capacity` positions.
  KvCache new_cache(int64_t batch, int64_t capacity) const;
  // Runs `ids` [B, T] (prepared) at `positions` [B, T] after the cached positions, appends their keys and values to
  // `cache` (`valid` [B, T] marks tokens) and returns the logits [B, V] of the last of them. Records no graph.
  at::Tensor extend(KvCache& cache, const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& valid) const;

 private:
  // y = x Wᵀ + b, plus scale · (x Aᵀ) Bᵀ with a LoRA adapter (Decoder::project).
  struct Projection {
    at::Tensor weight;
    at::Tensor bias;            // undefined without attention_bias / mlp_bias
    at::Tensor lora_a, lora_b;  // undefined without an adapter
    double lora_scale = 0;
  };
  struct Layer {
    at::Tensor input_norm, q_norm, k_norm, post_attention_norm;
    Projection q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
    // Each projection with its module name under the layer ("self_attn.q_proj", …).
    std::vector<std::pair<std::string, Projection*>> projections();
  };
  struct Rope {
    at::Tensor cos, sin;  // [B, 1, T, head_dim] in the model dtype
  };

  at::Tensor parameter(const std::string& name, std::vector<int64_t> shape);
  // `p` in the compute dtype: itself when stored so; a differentiable cast while a graph is recorded for it; else
  // one cached cast per parameter version (decoding casts each weight once, not once per token).
  at::Tensor compute(const at::Tensor& p) const;
  at::Tensor project(const Projection& p, const at::Tensor& x) const;
  Projection projection(const std::string& name, int64_t out, int64_t in, bool bias);
  // Final hidden states [B, T, hidden] after the last norm, for ids at `positions` seeing the keys `attend` allows
  // ([B, 1, T, keys]). With a cache, the new keys and values are appended to it (the caller advances its length).
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& attend, KvCache* cache, bool checkpoint) const;
  // Pre-norm block `index`: attention then MLP, each added to the residual stream.
  at::Tensor layer_forward(size_t index, const at::Tensor& x, const Rope& rope, const at::Tensor& attend, KvCache* cache) const;
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  Rope rope(const at::Tensor& positions) const;
  at::Tensor attention(size_t index, const at::Tensor& x, const Rope& rope, const at::Tensor& attend, KvCache* cache) const;
  // remove_lora's work, with lists_mutex_ held by the caller (merge_lora holds it across the merge and the removal).
  void detach_lora();
  at::Tensor mlp(const Layer& layer, const at::Tensor& x) const;
  at::Tensor lm_head(const at::Tensor& hidden) const;

  DecoderConfig config_;
  at::ScalarType dtype_, parameter_dtype_;
  at::Device device_;
  NamedTensors parameters_;
  at::Tensor embed_tokens_, final_norm_;
  Projection head_;  // the LM head: its weight is embed_tokens_ when tied
  std::vector<Layer> layers_;
  std::optional<LoraConfig> lora_;
  NamedTensors lora_parameters_;
  // Held while add_lora, merge_lora or remove_lora change the lists (whole, so a copy is never half-built) and while
  // a copy is taken.
  mutable std::mutex lists_mutex_;
  at::Tensor inv_freq_;  // [head_dim / 2] float32 rotary frequencies, scaling applied

  struct Cast {
    at::Tensor source;  // held, so that its address cannot be reused by another tensor while the entry lives
    int64_t version;
    at::Tensor value;
  };
  mutable std::mutex casts_mutex_;
  mutable std::unordered_map<const c10::TensorImpl*, Cast> casts_;
};

}  // namespace prefix_rl
