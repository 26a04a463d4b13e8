// The decoder's math follows transformers' modeling_qwen3.py and modeling_llama.py step by step (including where
// they compute in float32), so that fp32 logits match theirs to rounding.
#include "model/decoder.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "common.h"
#include "ops/head_logprobs.h"
#include "ops/logprobs.h"
#include "ops/skinny_linear.h"

namespace prefix_rl {

namespace {

// (x1, x2) → (-x2, x1) over the two halves of the last dimension: RoPE's rotation in the "half" layout of HF weights.
at::Tensor rotate_half(const at::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// [B, kv_heads, T, D] → [B, kv_heads * groups, T, D]: each key/value head serves `groups` query heads. Explicit rather
// than SDPA's enable_gqa, which only some attention backends accept together with a mask.
at::Tensor repeat_kv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  int64_t batch = x.size(0), heads = x.size(1), time = x.size(2), dim = x.size(3);
  return x.unsqueeze(2).expand({batch, heads, groups, time, dim}).reshape({batch, heads * groups, time, dim});
}

// Rotary frequencies θ^(-2i/D), i < D/2, computed in float32 as transformers does; llama3 scaling as in its
// _compute_llama3_parameters.
at::Tensor rotary_frequencies(const DecoderConfig& config) {
  at::Tensor exponents = at::arange(0, config.head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(config.head_dim);
  at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, exponents);
  if (!config.rope_scaling) return inv_freq;
  const Llama3RopeScaling& s = *config.rope_scaling;
  const double context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = context / s.low_freq_factor;
  const double high_freq_wavelen = context / s.high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  at::Tensor smooth = (context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
  at::Tensor medium = at::logical_not(wavelen < high_freq_wavelen) & at::logical_not(wavelen > low_freq_wavelen);
  return at::where(medium, smoothed, scaled);
}

using LayerFn = std::function<at::Tensor(const at::Tensor&)>;

// The backward node of a checkpointed layer: reruns the layer on its saved input with a graph and backpropagates
// through it. That inner backward accumulates the layer's parameter gradients into their .grad (the reentrant scheme
// of torch.utils.checkpoint), so it serves backward(), not autograd::grad() over parameters.
class RecomputeLayer : public torch::autograd::Node {
 public:
  RecomputeLayer(LayerFn layer, at::Tensor input) : layer_(std::move(layer)), input_(std::move(input)) {}

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    at::Tensor input = input_.detach().requires_grad_(true);
    at::Tensor output;
    {
      at::AutoGradMode enable_grad(true);
      output = layer_(input);
    }
    torch::autograd::backward({output}, {grads[0]});
    return {input.grad()};
  }

  void release_variables() override {
    input_.reset();
    layer_ = nullptr;
  }

 private:
  LayerFn layer_;
  at::Tensor input_;  // detached: the node keeps the values, not the upstream graph
};

// Runs `layer` without recording its graph and attaches a RecomputeLayer node to the output instead.
at::Tensor checkpointed(LayerFn layer, const at::Tensor& input) {
  at::Tensor output;
  {
    at::NoGradGuard no_grad;
    output = layer(input);
  }
  auto node = c10::make_intrusive<RecomputeLayer>(std::move(layer), input.detach());
  node->set_next_edges(torch::autograd::collect_next_edges(input));
  torch::autograd::set_history(output, node);
  return output;
}

// Which keys each query may see, [B, 1, T, L], for T queries at cache positions start..start+T-1 and L keys of which
// `key_valid` [B, L] marks the tokens. A query sees the tokens at or before it, and always itself, so that a query
// with no visible token (left padding) gets a finite output instead of NaN.
at::Tensor visible_keys(const at::Tensor& key_valid, int64_t start, int64_t time) {
  const int64_t keys = key_valid.size(1);
  auto positions = at::TensorOptions().dtype(at::kLong).device(key_valid.device());
  at::Tensor query = at::arange(start, start + time, positions).unsqueeze(1);  // [T, 1]
  at::Tensor key = at::arange(keys, positions);                                // [L]
  return ((key <= query) & key_valid.view({-1, 1, 1, keys})) | (key == query);
}

void check_config(const DecoderConfig& c) {
  for (auto [name, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                             {"hidden_size", c.hidden_size},
                             {"intermediate_size", c.intermediate_size},
                             {"num_hidden_layers", c.num_layers},
                             {"num_attention_heads", c.num_heads},
                             {"num_key_value_heads", c.num_kv_heads},
                             {"head_dim", c.head_dim}}) {
    if (value < 1) invalid_argument(std::string("model config: ") + name + " must be positive, got " + std::to_string(value));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    invalid_argument("model config: num_attention_heads (" + std::to_string(c.num_heads) + ") must be a multiple of num_key_value_heads (" +
                     std::to_string(c.num_kv_heads) + ")");
  }
  if (c.head_dim % 2 != 0) invalid_argument("model config: head_dim must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0)) invalid_argument("model config: rms_norm_eps and rope_theta must be positive");
  if (c.rope_scaling && !(c.rope_scaling->factor > 0 && c.rope_scaling->high_freq_factor > c.rope_scaling->low_freq_factor &&
                          c.rope_scaling->low_freq_factor > 0 && c.rope_scaling->original_max_position_embeddings > 0)) {
    invalid_argument(
        "model config: llama3 rope_scaling needs factor > 0, high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0");
  }
}

}  // namespace

static bool reduced_precision(at::ScalarType dtype) { return dtype == at::kBFloat16 || dtype == at::kHalf; }

Decoder::Decoder(const DecoderConfig& config, at::ScalarType dtype, at::Device device, bool master_weights)
    : config_(config), dtype_(dtype), parameter_dtype_(master_weights && reduced_precision(dtype) ? at::kFloat : dtype), device_(device) {
  check_config(config);
  if (!at::isFloatingType(dtype)) invalid_argument("model dtype must be floating point, got " + dtype_name(dtype));
  const int64_t hidden = config.hidden_size, q_size = config.num_heads * config.head_dim, kv_size = config.num_kv_heads * config.head_dim;
  const int64_t inner = config.intermediate_size;

  embed_tokens_ = parameter("model.embed_tokens.weight", {config.vocab_size, hidden});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.input_norm = parameter(prefix + "input_layernorm.weight", {hidden});
    layer.q_proj = projection(prefix + "self_attn.q_proj", q_size, hidden, config.attention_bias);
    layer.k_proj = projection(prefix + "self_attn.k_proj", kv_size, hidden, config.attention_bias);
    layer.v_proj = projection(prefix + "self_attn.v_proj", kv_size, hidden, config.attention_bias);
    layer.o_proj = projection(prefix + "self_attn.o_proj", hidden, q_size, config.attention_bias);
    if (config.qk_norm) {
      layer.q_norm = parameter(prefix + "self_attn.q_norm.weight", {config.head_dim});
      layer.k_norm = parameter(prefix + "self_attn.k_norm.weight", {config.head_dim});
    }
    layer.post_attention_norm = parameter(prefix + "post_attention_layernorm.weight", {hidden});
    layer.gate_proj = projection(prefix + "mlp.gate_proj", inner, hidden, config.mlp_bias);
    layer.up_proj = projection(prefix + "mlp.up_proj", inner, hidden, config.mlp_bias);
    layer.down_proj = projection(prefix + "mlp.down_proj", hidden, inner, config.mlp_bias);
    layers_.push_back(std::move(layer));
  }
  final_norm_ = parameter("model.norm.weight", {hidden});
  head_.weight = config.tie_word_embeddings ? embed_tokens_ : parameter("lm_head.weight", {config.vocab_size, hidden});
  inv_freq_ = rotary_frequencies(config).to(device);
  TORCH_INTERNAL_ASSERT(static_cast<int64_t>(parameters_.size()) == parameter_count(config),
                        "Decoder::parameter_count disagrees with the constructor");
}

int64_t Decoder::parameter_count(const DecoderConfig& config) {
  // Per layer: two norms, seven projections (with their biases), the q/k norms.
  const int64_t per_layer = 2 + 7 + (config.attention_bias ? 4 : 0) + (config.mlp_bias ? 3 : 0) + (config.qk_norm ? 2 : 0);
  return 2 + config.num_layers * per_layer + (config.tie_word_embeddings ? 0 : 1);  // + embedding, final norm, head
}

at::Tensor Decoder::parameter(const std::string& name, std::vector<int64_t> shape) {
  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(parameter_dtype_).device(device_));
  parameters_.emplace_back(name, tensor);
  return tensor;
}

at::Tensor Decoder::compute(const at::Tensor& p) const {
  if (!p.defined() || p.scalar_type() == dtype_) return p;
  if (at::GradMode::is_enabled() && p.requires_grad()) return p.to(dtype_);
  std::lock_guard<std::mutex> lock(casts_mutex_);
  auto found = casts_.find(p.unsafeGetTensorImpl());
  if (found != casts_.end() && found->second.version == p._version()) return found->second.value;
  at::NoGradGuard no_grad;
  Cast cast{p, p._version(), p.to(dtype_)};
  casts_.insert_or_assign(p.unsafeGetTensorImpl(), cast);
  return cast.value;
}

Decoder::Projection Decoder::projection(const std::string& name, int64_t out, int64_t in, bool bias) {
  Projection p;
  p.weight = parameter(name + ".weight", {out, in});
  if (bias) p.bias = parameter(name + ".bias", {out});
  return p;
}

at::Tensor Decoder::project(const Projection& p, const at::Tensor& x) const {
  at::Tensor y = dense(x, compute(p.weight), compute(p.bias));
  if (p.lora_a.defined()) y = y + dense(dense(x, compute(p.lora_a)), compute(p.lora_b)) * p.lora_scale;
  return y;
}

std::vector<std::pair<std::string, Decoder::Projection*>> Decoder::Layer::projections() {
  return {{"self_attn.q_proj", &q_proj}, {"self_attn.k_proj", &k_proj}, {"self_attn.v_proj", &v_proj}, {"self_attn.o_proj", &o_proj},
          {"mlp.gate_proj", &gate_proj}, {"mlp.up_proj", &up_proj},     {"mlp.down_proj", &down_proj}};
}

void Decoder::add_lora(const LoraConfig& config, uint64_t seed) {
  if (lora_) invalid_argument("the model already has a LoRA adapter (merge or remove it first)");
  if (config.rank < 1) invalid_argument("LoRA rank must be at least 1, got " + std::to_string(config.rank));
  if (!(config.alpha > 0)) invalid_argument("LoRA alpha must be positive");
  if (config.target_modules.empty()) invalid_argument("LoRA target_modules is empty");
  static const std::set<std::string> kTargets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"};
  const std::set<std::string> targets(config.target_modules.begin(), config.target_modules.end());
  for (const std::string& target : targets) {
    if (!kTargets.count(target)) {
      invalid_argument("LoRA target module '" + target +
                       "' is not a projection of this model (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head)");
    }
  }
  const double scale = config.alpha / (config.rslora ? std::sqrt(static_cast<double>(config.rank)) : static_cast<double>(config.rank));
  std::lock_guard<std::mutex> lock(lists_mutex_);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto options = at::TensorOptions().dtype(reduced_precision(dtype_) ? at::kFloat : dtype_).device(device_);
  auto attach = [&](Projection& projection, const std::string& peft_name) {
    const int64_t out = projection.weight.size(0), in = projection.weight.size(1);
    // PEFT's init: A is kaiming_uniform(a = √5), i.e. uniform in ±1/√in; B is zero, so ΔW starts at 0.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    projection.lora_a = at::empty({config.rank, in}, at::kFloat).uniform_(-bound, bound, generator).to(options);
    projection.lora_b = at::zeros({out, config.rank}, options);
    projection.lora_scale = scale;
    lora_parameters_.emplace_back(peft_name + ".lora_A.weight", projection.lora_a);
    lora_parameters_.emplace_back(peft_name + ".lora_B.weight", projection.lora_b);
  };
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (auto& [name, projection] : layers_[i].projections()) {
      // "self_attn.q_proj" is targeted as "q_proj"
      if (targets.count(name.substr(name.find('.') + 1))) attach(*projection, "base_model.model.model.layers." + std::to_string(i) + "." + name);
    }
  }
  if (targets.count("lm_head")) attach(head_, "base_model.model.lm_head");
  lora_ = config;
}

void Decoder::merge_lora() {
  if (!lora_) invalid_argument("the model has no LoRA adapter");
  at::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(lists_mutex_);
  auto merge = [](Projection& projection) {
    if (!projection.lora_a.defined()) return;
    // In float32, then rounded once into the weight's dtype.
    at::Tensor delta = at::matmul(projection.lora_b.to(at::kFloat), projection.lora_a.to(at::kFloat)) * projection.lora_scale;
    projection.weight.add_(delta.to(projection.weight.scalar_type()));
  };
  for (Layer& layer : layers_) {
    for (auto& [name, projection] : layer.projections()) merge(*projection);
  }
  if (head_.lora_a.defined() && config_.tie_word_embeddings) {
    // Folding ΔW into the shared matrix would change the input embedding too: the head gets a matrix of its own.
    at::Tensor untied = parameter("lm_head.weight", {config_.vocab_size, config_.hidden_size});
    untied.copy_(embed_tokens_);
    untied.set_requires_grad(embed_tokens_.requires_grad());
    head_.weight = untied;
    config_.tie_word_embeddings = false;
  }
  merge(head_);
  detach_lora();
}

void Decoder::remove_lora() {
  std::lock_guard<std::mutex> lock(lists_mutex_);
  detach_lora();
}

void Decoder::detach_lora() {
  {
    std::lock_guard<std::mutex> lock(casts_mutex_);
    casts_.clear();
  }
  auto detach = [](Projection& projection) {
    projection.lora_a = at::Tensor();
    projection.lora_b = at::Tensor();
    projection.lora_scale = 0;
  };
  for (Layer& layer : layers_) {
    for (auto& [name, projection] : layer.projections()) detach(*projection);
  }
  detach(head_);
  lora_parameters_.clear();
  lora_.reset();
}

// Normalizes in float32 and scales in the model dtype, in transformers' order (which matters for bf16).
at::Tensor Decoder::rms_norm(const at::Tensor& x, const at::Tensor& weight) const {
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return compute(weight) * h.to(x.scalar_type());
}

Decoder::Rope Decoder::rope(const at::Tensor& positions) const {
  at::Tensor angles = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, D/2]
  at::Tensor both_halves = at::cat({angles, angles}, -1).unsqueeze(1);     // [B, 1, T, D]
  return {both_halves.cos().to(dtype_), both_halves.sin().to(dtype_)};
}

at::Tensor Decoder::attention(size_t index, const at::Tensor& x, const Rope& rope, const at::Tensor& attend, KvCache* cache) const {
  const Layer& layer = layers_[index];
  const int64_t batch = x.size(0), time = x.size(1), dim = config_.head_dim;
  at::Tensor q = project(layer.q_proj, x).view({batch, time, config_.num_heads, dim});
  at::Tensor k = project(layer.k_proj, x).view({batch, time, config_.num_kv_heads, dim});
  at::Tensor v = project(layer.v_proj, x).view({batch, time, config_.num_kv_heads, dim});
  if (config_.qk_norm) {
    q = rms_norm(q, layer.q_norm);
    k = rms_norm(k, layer.k_norm);
  }
  q = q.transpose(1, 2);  // [B, heads, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  q = q * rope.cos + rotate_half(q) * rope.sin;
  k = k * rope.cos + rotate_half(k) * rope.sin;
  if (cache) {
    const int64_t start = cache->length;
    cache->keys[index].narrow(2, start, time).copy_(k);
    cache->values[index].narrow(2, start, time).copy_(v);
    k = cache->keys[index].narrow(2, 0, start + time);
    v = cache->values[index].narrow(2, 0, start + time);
  }
  const int64_t groups = config_.num_heads / config_.num_kv_heads;
  at::Tensor out = at::scaled_dot_product_attention(q, repeat_kv(k, groups), repeat_kv(v, groups), attend);
  out = out.transpose(1, 2).reshape({batch, time, config_.num_heads * dim});
  return project(layer.o_proj, out);
}

at::Tensor Decoder::mlp(const Layer& layer, const at::Tensor& x) const {
  return project(layer.down_proj, at::silu(project(layer.gate_proj, x)) * project(layer.up_proj, x));
}

at::Tensor Decoder::lm_head(const at::Tensor& hidden) const { return project(head_, hidden); }

HeadLora Decoder::head_lora(const at::Tensor& hidden) const {
  if (!head_.lora_a.defined()) return {};
  // Scaled here, as project() scales the low-rank product: the fused head adds hidden_r · Bᵀ to each chunk.
  return {dense(hidden, compute(head_.lora_a)) * head_.lora_scale, compute(head_.lora_b)};
}

KvCache Decoder::new_cache(int64_t batch, int64_t capacity) const {
  KvCache cache;
  auto options = at::TensorOptions().dtype(dtype_).device(device_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    cache.keys.push_back(at::empty({batch, config_.num_kv_heads, capacity, config_.head_dim}, options));
    cache.values.push_back(at::empty({batch, config_.num_kv_heads, capacity, config_.head_dim}, options));
  }
  cache.valid = at::zeros({batch, capacity}, options.dtype(at::kBool));
  return cache;
}

std::pair<at::Tensor, at::Tensor> Decoder::prepare(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  if (input_ids.dim() != 2 || at::isFloatingType(input_ids.scalar_type()) || input_ids.scalar_type() == at::kBool) {
    invalid_argument("input_ids must be a [batch, time] integer tensor, got " + dtype_name(input_ids.scalar_type()) + " " +
                     c10::str(input_ids.sizes()));
  }
  if (input_ids.size(1) == 0) invalid_argument("input_ids has no tokens (time = 0)");
  at::Tensor ids = input_ids.to(device_, at::kLong);
  if (ids.numel() > 0) {
    int64_t low = ids.min().item<int64_t>(), high = ids.max().item<int64_t>();
    if (low < 0 || high >= config_.vocab_size) {
      invalid_argument("input_ids must lie in [0, " + std::to_string(config_.vocab_size) + "), found " + std::to_string(low < 0 ? low : high));
    }
  }
  if (!attention_mask.defined()) return {ids, at::ones_like(ids, at::kBool)};
  if (attention_mask.sizes() != input_ids.sizes()) {
    invalid_argument("attention_mask has shape " + c10::str(attention_mask.sizes()) + ", but input_ids has " + c10::str(input_ids.sizes()));
  }
  return {ids, attention_mask.to(device_).to(at::kBool)};
}

at::Tensor Decoder::layer_forward(size_t index, const at::Tensor& x, const Rope& rope, const at::Tensor& attend, KvCache* cache) const {
  const Layer& layer = layers_[index];
  at::Tensor h = x + attention(index, rms_norm(x, layer.input_norm), rope, attend, cache);
  return h + mlp(layer, rms_norm(h, layer.post_attention_norm));
}

at::Tensor Decoder::hidden_states(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& attend, KvCache* cache,
                                  bool checkpoint) const {
  const Rope rotary = rope(positions);

  // Checkpointing only pays when a graph is recorded: some weight trains, the base's or a LoRA adapter's.
  const auto trains = [](const auto& p) { return p.second.requires_grad(); };
  const bool recompute =
      checkpoint && at::GradMode::is_enabled() &&
      (std::any_of(parameters_.begin(), parameters_.end(), trains) || std::any_of(lora_parameters_.begin(), lora_parameters_.end(), trains));
  // Rows gathered, then cast: the same values as gathering from a cast table, without casting the whole [V, H].
  at::Tensor x = at::embedding(embed_tokens_, ids).to(dtype_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    check_cancelled();
    if (recompute) {
      auto self = shared_from_this();
      x = checkpointed([self, i, rotary, attend](const at::Tensor& input) { return self->layer_forward(i, input, rotary, attend, nullptr); }, x);
    } else {
      x = layer_forward(i, x, rotary, attend, cache);
    }
  }
  return rms_norm(x, final_norm_);
}

// Positions count the tokens before each one, so padding shifts nothing.
static at::Tensor token_positions(const at::Tensor& mask) { return (mask.cumsum(-1) - 1).clamp_min(0); }

at::Tensor Decoder::final_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint, int64_t start,
                                 int64_t length) const {
  auto [ids, mask] = prepare(input_ids, attention_mask);
  const int64_t time = ids.size(1);
  if (length < 0) length = time - start;
  if (start < 0 || length < 1 || start + length > time) {
    invalid_argument("logits positions [" + std::to_string(start) + ", " + std::to_string(start + length) + ") do not lie inside the " +
                     std::to_string(time) + " input positions");
  }
  at::Tensor attend = visible_keys(mask, 0, time);
  at::Tensor hidden = hidden_states(ids, token_positions(mask), attend, nullptr, checkpoint);
  return start == 0 && length == time ? hidden : hidden.narrow(1, start, length);
}

at::Tensor Decoder::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint, int64_t logits_start,
                            int64_t logits_length) const {
  return lm_head(final_hidden(input_ids, attention_mask, checkpoint, logits_start, logits_length));
}

at::Tensor Decoder::token_logprobs(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool checkpoint, bool fused_head) const {
  auto [ids, mask] = prepare(input_ids, attention_mask);
  const int64_t predicted = ids.size(1) - 1;
  // The last position predicts no given token: its logits are never computed.
  at::Tensor attend = visible_keys(mask, 0, ids.size(1));
  at::Tensor hidden = hidden_states(ids, token_positions(mask), attend, nullptr, checkpoint).narrow(1, 0, predicted);
  at::Tensor targets = ids.narrow(1, 1, predicted);
  at::Tensor logprobs =
      fused_head ? head_logprobs(hidden, head_weight(), targets.unsqueeze(-1), 1.0, 4096, false, std::nullopt, head_lora(hidden)).logprobs.squeeze(-1)
                 : gather_logprobs(lm_head(hidden), targets.unsqueeze(-1)).squeeze(-1);
  // A token has a log-prob when it and the token before it are real: a row's first token has no prefix.
  at::Tensor scored = mask.narrow(1, 1, predicted) & mask.narrow(1, 0, predicted);
  return logprobs.masked_fill(at::logical_not(scored), 0.0);
}

at::Tensor Decoder::extend(KvCache& cache, const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& valid) const {
  at::NoGradGuard no_grad;
  const int64_t start = cache.length, time = ids.size(1);
  if (start + time > cache.valid.size(1)) invalid_argument("the KV cache is full (" + std::to_string(cache.valid.size(1)) + " positions)");
  cache.valid.narrow(1, start, time).copy_(valid);
  at::Tensor attend = visible_keys(cache.valid.narrow(1, 0, start + time), start, time);
  at::Tensor hidden = hidden_states(ids, positions, attend, &cache, /*checkpoint=*/false);
  cache.length += time;
  return lm_head(hidden.select(1, time - 1));
}

}  // namespace prefix_rl
