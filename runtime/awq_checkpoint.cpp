#include "runtime/awq_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/embedding.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"

namespace tessera {
namespace fs = std::filesystem;
namespace {

Matrix read_matrix(const Checkpoint& ck, const std::string& name) {
  const Tensor t = ck.view(name);
  Matrix m(t.dim(0), t.ndim == 1 ? 1 : t.row_size());
  convert_to_f32(t.data, t.dtype, t.numel(), m.v.data());
  return m;
}

// values (F32) in `dtype`, shaped like `like`.
Tensor from_f32(const std::vector<float>& values, DType dtype, const Tensor& like) {
  Tensor t = like.ndim == 1 ? host_tensor(dtype, {like.dim(0)})
                            : host_tensor(dtype, {like.dim(0), like.dim(1)});
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) t.ptr<float>()[i] = values[i];
    else if (dtype == DType::F16) t.ptr<uint16_t>()[i] = f32_to_f16(values[i]);
    else t.ptr<uint16_t>()[i] = f32_to_bf16(values[i]);
  }
  return t;
}

void scale_columns(Matrix& w, const std::vector<float>& s) {
  for (int64_t o = 0; o < w.rows; ++o)
    for (int64_t c = 0; c < w.cols; ++c) w.row(o)[c] *= s[size_t(c)];
}
void divide_rows(Matrix& w, const std::vector<float>& s) {
  for (int64_t o = 0; o < w.rows; ++o)
    for (int64_t c = 0; c < w.cols; ++c) w.row(o)[c] /= s[size_t(o)];
}

const char* const kProjNames[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                   "mlp.down_proj"};
// The input each of kProjNames reads.
const LinearInput kProjSite[7] = {LinearInput::kAttention,    LinearInput::kAttention,
                                  LinearInput::kAttention,    LinearInput::kAttentionOut,
                                  LinearInput::kMlp,          LinearInput::kMlp,
                                  LinearInput::kMlpAct};

Matrix* proj(AwqLayerTensors& t, int i) {
  Matrix* m[7] = {&t.q, &t.k, &t.v, &t.o, &t.gate, &t.up, &t.down};
  return m[i];
}

// One decoder layer: reads, searches, folds, quantizes; appends its tensors to `out`.
class LayerQuantizer {
 public:
  LayerQuantizer(const Checkpoint& ck, const ModelConfig& cfg, const ActivationRecorder* st,
                 const AwqOptions& opt, std::vector<NamedTensor>& out)
      : ck_(ck), cfg_(cfg), st_(st), opt_(opt), out_(out) {}

  AwqLayerReport run(int64_t l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    AwqLayerTensors t;
    for (int i = 0; i < 7; ++i) *proj(t, i) = read_matrix(ck_, p + kProjNames[i] + ".weight");
    t.input_norm = read_matrix(ck_, p + "input_layernorm.weight").v;
    t.post_attention_norm = read_matrix(ck_, p + "post_attention_layernorm.weight").v;
    const std::string vb = p + "self_attn.v_proj.bias", ub = p + "mlp.up_proj.bias";
    if (ck_.has(vb)) t.v_bias = read_matrix(ck_, vb).v;
    if (ck_.has(ub)) t.up_bias = read_matrix(ck_, ub).v;

    AwqLayerReport rep;
    rep.layer = l;
    std::vector<float> s[kNumLinearInputs];
    if (opt_.search_scales) {
      const auto search = [&](LinearInput site, std::vector<const Matrix*> ws,
                              const std::vector<int32_t>& tie) {
        const ScaleChoice c =
            search_scales(ws, st_->at(l, site), opt_.group_size, tie, opt_.grid);
        rep.alpha[int(site)] = c.alpha;
        rep.loss[int(site)] = c.loss;
        rep.rtn_loss[int(site)] = c.rtn_loss;
        s[int(site)] = c.scales;
      };
      search(LinearInput::kAttention, {&t.q, &t.k, &t.v}, {});
      search(LinearInput::kAttentionOut, {&t.o}, kv_channel_classes(cfg_));
      search(LinearInput::kMlp, {&t.gate, &t.up}, {});
      search(LinearInput::kMlpAct, {&t.down}, {});
      fold_awq_scales(t, s, cfg_);
    }
    // Clipping, as AutoAWQ, spares q and k (attention scores are sensitive to them).
    for (int i = 0; i < 7; ++i) {
      std::vector<float> clip;
      if (opt_.search_clip && i >= 2)
        clip = search_clip(*proj(t, i), st_->at(l, kProjSite[i]), opt_.group_size,
                           s[int(kProjSite[i])], opt_.grid);
      for (NamedTensor& nt : pack_awq(quantize_int4_awq(*proj(t, i), opt_.group_size, clip),
                                      p + kProjNames[i]))
        out_.push_back(std::move(nt));
    }
    keep(p + "input_layernorm.weight", t.input_norm);
    keep(p + "post_attention_layernorm.weight", t.post_attention_norm);
    if (!t.v_bias.empty()) keep(vb, t.v_bias);
    if (!t.up_bias.empty()) keep(ub, t.up_bias);
    return rep;
  }

 private:
  // A folded 1-D tensor, stored in the checkpoint's own dtype.
  void keep(const std::string& name, const std::vector<float>& values) {
    const Tensor orig = ck_.view(name);
    out_.push_back({name, from_f32(values, orig.dtype, orig)});
  }

  const Checkpoint& ck_;
  const ModelConfig& cfg_;
  const ActivationRecorder* st_;
  const AwqOptions& opt_;
  std::vector<NamedTensor>& out_;
};

bool is_layer_linear_weight(const std::string& n) {
  const std::string suffix = "_proj.weight";
  return n.rfind("model.layers.", 0) == 0 && n.size() > suffix.size() &&
         n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void check_awq_quantizable(const ModelConfig& cfg, const AwqOptions& opt) {
  require(!cfg.prequant.active(), "the checkpoint is already quantized (quantization_config)");
  const int64_t g = opt.group_size;
  require(g > 0 && g % 8 == 0, "--group-size must be a positive multiple of 8, got " +
                                   std::to_string(g));
  const struct { const char* what; int64_t in, out; } dims[] = {
      {"hidden_size", cfg.hidden_size, cfg.kv_size()},
      {"num_attention_heads * head_dim", cfg.q_size(), cfg.hidden_size},
      {"intermediate_size", cfg.intermediate_size, cfg.intermediate_size}};
  for (const auto& d : dims) {
    require(d.in % g == 0, std::string(d.what) + " (" + std::to_string(d.in) +
                               ") is not a multiple of the group size " + std::to_string(g) +
                               "; choose a --group-size that divides it");
    require(d.out % 8 == 0, "AWQ packs 8 outputs per int32 word: " + std::to_string(d.out) +
                                " outputs cannot be packed");
  }
}

std::vector<int32_t> kv_channel_classes(const ModelConfig& cfg) {
  const int64_t d = cfg.head_dim, per_kv = cfg.num_heads / cfg.num_kv_heads;
  std::vector<int32_t> cls(static_cast<size_t>(cfg.q_size()));
  for (int64_t c = 0; c < cfg.q_size(); ++c)
    cls[size_t(c)] = int32_t((c / d) / per_kv * d + c % d);
  return cls;
}

void fold_awq_scales(AwqLayerTensors& t, const std::vector<float> (&s)[kNumLinearInputs],
                     const ModelConfig& cfg) {
  const std::vector<float>& sa = s[int(LinearInput::kAttention)];
  for (Matrix* m : {&t.q, &t.k, &t.v}) scale_columns(*m, sa);
  for (size_t c = 0; c < t.input_norm.size(); ++c) t.input_norm[c] /= sa[c];
  const std::vector<float>& so = s[int(LinearInput::kAttentionOut)];
  std::vector<float> so_kv(static_cast<size_t>(t.v.rows));
  const std::vector<int32_t> cls = kv_channel_classes(cfg);
  for (size_t c = 0; c < cls.size(); ++c) so_kv[size_t(cls[c])] = so[c];
  scale_columns(t.o, so);
  divide_rows(t.v, so_kv);
  for (size_t c = 0; c < t.v_bias.size(); ++c) t.v_bias[c] /= so_kv[c];
  const std::vector<float>& sm = s[int(LinearInput::kMlp)];
  for (Matrix* m : {&t.gate, &t.up}) scale_columns(*m, sm);
  for (size_t c = 0; c < t.post_attention_norm.size(); ++c) t.post_attention_norm[c] /= sm[c];
  const std::vector<float>& sd = s[int(LinearInput::kMlpAct)];
  scale_columns(t.down, sd);
  divide_rows(t.up, sd);
  for (size_t c = 0; c < t.up_bias.size(); ++c) t.up_bias[c] /= sd[c];
}

std::vector<NamedTensor> pack_awq(const Int4Codes& c, const std::string& prefix) {
  require(c.out % 8 == 0 && c.groups > 0 && c.in % c.groups == 0, prefix + ": not packable as AWQ");
  const int64_t words = c.out / 8, g = c.in / c.groups;
  Tensor qweight = host_tensor(DType::I32, {c.in, words});
  Tensor qzeros = host_tensor(DType::I32, {c.groups, words});
  Tensor scales = host_tensor(DType::F16, {c.groups, c.out});
  for (int64_t i = 0; i < c.in; ++i) {
    require(c.group_of[size_t(i)] == i / g, prefix + ": groups are not consecutive runs");
    for (int64_t w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int j = 0; j < 8; ++j)
        word |= uint32_t(c.q[size_t((8 * w + kAwqOrder[j]) * c.in + i)] & 0xf) << (4 * j);
      qweight.ptr<uint32_t>()[i * words + w] = word;
    }
  }
  for (int64_t gi = 0; gi < c.groups; ++gi) {
    for (int64_t w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int j = 0; j < 8; ++j)
        word |= uint32_t(c.zeros[size_t(gi * c.out + 8 * w + kAwqOrder[j])] & 0xf) << (4 * j);
      qzeros.ptr<uint32_t>()[gi * words + w] = word;
    }
    for (int64_t o = 0; o < c.out; ++o)
      scales.ptr<uint16_t>()[gi * c.out + o] = f32_to_f16(c.scales[size_t(gi * c.out + o)]);
  }
  return {{prefix + ".qweight", qweight}, {prefix + ".qzeros", qzeros},
          {prefix + ".scales", scales}};
}

void write_awq_checkpoint(const std::string& model_dir, const ModelConfig& cfg,
                          const ActivationRecorder* stats, const AwqOptions& opt,
                          const std::string& out_dir,
                          const std::function<void(const AwqLayerReport&)>& on_layer) {
  check_awq_quantizable(cfg, opt);
  require(stats != nullptr || (!opt.search_scales && !opt.search_clip),
          "AWQ searches need calibration activations");
  const Checkpoint ck = Checkpoint::open(model_dir);
  std::vector<NamedTensor> out;
  std::set<std::string> replaced;
  LayerQuantizer lq(ck, cfg, stats, opt, out);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const AwqLayerReport rep = lq.run(l);
    if (on_layer) on_layer(rep);
  }
  for (const NamedTensor& t : out) replaced.insert(t.name);
  for (const std::string& n : ck.names())  // the rest as stored (views of the mapping)
    if (!is_layer_linear_weight(n) && !replaced.count(n)) out.push_back({n, ck.view(n)});
  write_safetensors(out_dir + "/model.safetensors", out, {{"format", "pt"}});

  std::ifstream in(model_dir + "/config.json");
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
  config["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4},
                                   {"group_size", opt.group_size}, {"zero_point", true},
                                   {"version", "gemm"}, {"modules_to_not_convert", nullptr}};
  std::ofstream(out_dir + "/config.json") << config.dump(2) << "\n";
  for (const fs::directory_entry& e : fs::directory_iterator(model_dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name == "config.json" || e.path().extension() == ".safetensors" ||
        name == "model.safetensors.index.json")
      continue;
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace tessera
