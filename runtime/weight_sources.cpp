// TensorSources: a Hugging Face checkpoint (zero-copy row views of the mmapped file, column
// slices copied), and deterministic random weights of a config's shapes.
#include <cmath>
#include <numeric>
#include <map>

#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/weights.h"

namespace tessera {
namespace {

class CheckpointSource final : public TensorSource {
 public:
  explicit CheckpointSource(const std::string& dir) : ckpt_(Checkpoint::open(dir)) {}
  bool has(const std::string& name) const override { return ckpt_.has(name); }
  std::vector<int64_t> shape(const std::string& name) const override {
    return ckpt_.info(name).shape;
  }
  Tensor rows(const std::string& name, int64_t r0, int64_t r1) override {
    return ckpt_.view_rows(name, r0, r1);
  }
  Tensor cols(const std::string& name, int64_t c0, int64_t c1) override {
    return ckpt_.read_cols(name, c0, c1);
  }
  std::string describe(const std::string& name) const override {
    return "tensor " + name + " in " + ckpt_.dir();
  }

 private:
  Checkpoint ckpt_;
};

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

class DummySource final : public TensorSource {
 public:
  DummySource(const ModelConfig& c, DType dtype, uint64_t seed)
      : dtype_(dtype), seed_(seed), act_order_(c.prequant.desc_act) {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    shapes_["model.embed_tokens.weight"] = {c.vocab_size, H};
    if (!c.tie_word_embeddings) shapes_["lm_head.weight"] = {c.vocab_size, H};
    shapes_["model.norm.weight"] = {H};
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      shapes_[p + "input_layernorm.weight"] = {H};
      shapes_[p + "post_attention_layernorm.weight"] = {H};
      add_linear(c, p + "self_attn.q_proj", c.q_size(), H);
      add_linear(c, p + "self_attn.k_proj", c.kv_size(), H);
      add_linear(c, p + "self_attn.v_proj", c.kv_size(), H);
      add_linear(c, p + "self_attn.o_proj", H, c.q_size());
      add_linear(c, p + "mlp.gate_proj", I, H);
      add_linear(c, p + "mlp.up_proj", I, H);
      add_linear(c, p + "mlp.down_proj", H, I);
      if (c.attention_bias) {
        shapes_[p + "self_attn.q_proj.bias"] = {c.q_size()};
        shapes_[p + "self_attn.k_proj.bias"] = {c.kv_size()};
        shapes_[p + "self_attn.v_proj.bias"] = {c.kv_size()};
      }
    }
  }
  bool has(const std::string& name) const override { return shapes_.count(name) != 0; }
  std::vector<int64_t> shape(const std::string& name) const override {
    return shapes_.at(name);
  }
  Tensor rows(const std::string& name, int64_t r0, int64_t r1) override {
    const auto& s = shapes_.at(name);
    const int64_t cols = s.size() == 2 ? s[1] : 1;
    return generate(name, r0, r1, 0, cols, cols);
  }
  Tensor cols(const std::string& name, int64_t c0, int64_t c1) override {
    const auto& s = shapes_.at(name);
    return generate(name, 0, s[0], c0, c1, s[1]);
  }
  std::string describe(const std::string& name) const override {
    return "tensor " + name + " (dummy weights)";
  }

 private:
  // What a pre-quantized checkpoint stores instead of a *_proj weight (runtime/prequantized.h).
  enum class Packed { Words, Scales, GroupIndex };
  struct PackedInfo {
    Packed kind;
    int64_t in, group;  // the layer's inputs; inputs per group
  };

  // A *_proj layer [out, in]: a dense weight, or (the config has a quantization_config that
  // does not leave the layer unquantized) the AWQ / GPTQ tensors of random 4-bit codes, so
  // the loader takes the real repacking path.
  void add_linear(const ModelConfig& c, const std::string& prefix, int64_t out, int64_t in) {
    const PrequantConfig& q = c.prequant;
    if (!q.active() || q.skips(prefix)) {
      shapes_[prefix + ".weight"] = {out, in};
      return;
    }
    const int64_t g = q.group_size > 0 ? q.group_size : in, groups = (in + g - 1) / g;
    const bool awq = q.method == PrequantConfig::Method::Awq;
    shapes_[prefix + ".qweight"] = awq ? std::vector<int64_t>{in, out / 8}
                                       : std::vector<int64_t>{in / 8, out};
    shapes_[prefix + ".qzeros"] = {groups, out / 8};
    shapes_[prefix + ".scales"] = {groups, out};
    packed_[prefix + ".qweight"] = {Packed::Words, in, g};
    packed_[prefix + ".qzeros"] = {Packed::Words, in, g};
    packed_[prefix + ".scales"] = {Packed::Scales, in, g};
    if (!awq) {
      shapes_[prefix + ".g_idx"] = {in};
      packed_[prefix + ".g_idx"] = {Packed::GroupIndex, in, g};
    }
  }

  // Packed tensors: random int32 words (any nibble is a valid code or zero point), fp16
  // scales giving weights of the dense dummies' size, g_idx i / g (act-order: of a fixed
  // permutation of the inputs).
  Tensor generate_packed(const std::string& name, const PackedInfo& pi, int64_t r0, int64_t r1,
                         int64_t c0, int64_t c1, int64_t width) {
    const bool vector = shapes_.at(name).size() == 1;
    const DType dt = pi.kind == Packed::Scales ? DType::F16 : DType::I32;
    Tensor t = vector ? host_tensor(dt, {r1 - r0}) : host_tensor(dt, {r1 - r0, c1 - c0});
    const uint64_t key = splitmix64(seed_ ^ hash_name(name));
    const uint16_t scale = f32_to_f16(1.0f / (8.0f * std::sqrt(float(pi.in))));
    // An odd multiplier coprime with `in` permutes the inputs (act-order's scattered groups).
    int64_t mult = 7919;
    while (std::gcd(mult, pi.in) != 1) mult += 2;
    const bool act_order = act_order_;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i = (r - r0) * (c1 - c0) + (c - c0), e = r * width + c;
        if (pi.kind == Packed::Scales) t.ptr<uint16_t>()[i] = scale;
        else if (pi.kind == Packed::Words)
          t.ptr<uint32_t>()[i] = uint32_t(splitmix64(key + uint64_t(e)));
        else t.ptr<int32_t>()[i] = int32_t((act_order ? e * mult % pi.in : e) / pi.group);
      }
    return t;
  }

  // Element (r, c) of a tensor is a pure function of (seed, name, r * width + c), so every
  // rank's slice agrees with the unsharded tensor.
  Tensor generate(const std::string& name, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                  int64_t width) {
    if (auto it = packed_.find(name); it != packed_.end())
      return generate_packed(name, it->second, r0, r1, c0, c1, width);
    const auto& s = shapes_.at(name);
    const bool vector = s.size() == 1;
    const bool norm = name.find("norm") != std::string::npos;
    const DType dt = vector ? DType::F32 : dtype_;
    Tensor t = vector ? host_tensor(dt, {r1 - r0}) : host_tensor(dt, {r1 - r0, c1 - c0});
    const uint64_t key = splitmix64(seed_ ^ hash_name(name));
    // Uniform in [-a, a] with a = 1/sqrt(in_features): activations stay O(1).
    const float amp = vector ? 0.1f : 1.0f / std::sqrt(float(width));
    const int64_t w = c1 - c0;
#pragma omp parallel for schedule(static)
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const uint64_t bits = splitmix64(key + uint64_t(r * width + c));
        const float u = float(bits >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        const float v = (norm ? 1.0f : 0.0f) + amp * u;
        const int64_t i = (r - r0) * w + (c - c0);
        if (dt == DType::F32) t.ptr<float>()[i] = v;
        else if (dt == DType::BF16) t.ptr<uint16_t>()[i] = f32_to_bf16(v);
        else t.ptr<uint16_t>()[i] = f32_to_f16(v);
      }
    }
    return t;
  }

  DType dtype_;
  uint64_t seed_;
  bool act_order_ = false;
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::map<std::string, PackedInfo> packed_;
};

}  // namespace

std::unique_ptr<TensorSource> open_checkpoint_source(const std::string& model_dir) {
  return std::make_unique<CheckpointSource>(model_dir);
}

std::unique_ptr<TensorSource> make_dummy_source(const ModelConfig& cfg, DType dtype,
                                                uint64_t seed) {
  require(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
          "dummy weights must be float32, float16 or bfloat16");
  return std::make_unique<DummySource>(cfg, dtype, seed);
}

}  // namespace tessera
