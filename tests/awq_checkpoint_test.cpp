// runtime/awq_checkpoint.h: AutoAWQ packing (against the word written out by hand from
// AutoAWQ's order, and through tessera's AWQ reader), scale folding (the folded model computes
// the same logits), and TinyStories-656K written as an AWQ checkpoint: plain RTN lands on the
// golden int4 perplexity, the activation-aware one below it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/embedding.h"
#include "runtime/awq_checkpoint.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/perplexity.h"
#include "runtime/quant.h"
#include "runtime/tokenizer.h"
#include "tests/model_test_util.h"
#include "tests/prequant_pack.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {
namespace fs = std::filesystem;

const std::string kModel = "/models/TinyStories-656K";

TEST(AwqPack, WordsFollowAutoAwqsOrder) {
  // Output o holds code o (and zero point o) for every input: AutoAWQ's order_map
  // [0, 2, 4, 6, 1, 3, 5, 7] puts outputs 0, 2, 4, 6, 1, 3, 5, 7 in nibbles 0..7, so each
  // word reads 0x75316420 (written out by hand, as in prequantized_test).
  Int4Codes c;
  c.out = 8, c.in = 4, c.groups = 1;
  for (int o = 0; o < 8; ++o)
    for (int i = 0; i < 4; ++i) c.q.push_back(uint8_t(o));
  for (int o = 0; o < 8; ++o) c.zeros.push_back(int8_t(o)), c.scales.push_back(0.25f * float(o + 1));
  c.group_of = {0, 0, 0, 0};
  const std::vector<NamedTensor> t = pack_awq(c, "x");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "x.qweight");
  EXPECT_EQ(t[0].tensor.shape_str(), "[4, 1]");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(t[0].tensor.ptr<uint32_t>()[i], 0x75316420u) << i;
  EXPECT_EQ(t[1].tensor.ptr<uint32_t>()[0], 0x75316420u);
  EXPECT_EQ(t[2].tensor.dtype, DType::F16);
  EXPECT_EQ(f16_to_f32(t[2].tensor.ptr<uint16_t>()[7]), 2.0f);
}

TEST(AwqPack, TesserasAwqReaderGetsTheCodesBack) {
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Matrix w(24, 96);
  for (float& v : w.v) v = n(rng);
  const Int4Codes c = quantize_int4_awq(w, 32);
  const std::vector<NamedTensor> t = pack_awq(c, "x");
  const Int4Codes back = unpack_awq(t[0].tensor, t[1].tensor, t[2].tensor, 32, 0);
  EXPECT_EQ(back.q, c.q);
  EXPECT_EQ(back.scales, c.scales);  // fp16-exact by construction
  EXPECT_EQ(back.zeros, c.zeros);
  EXPECT_EQ(back.group_of, c.group_of);
}

// The checkpoint's tensors as F32 host tensors, by name.
MapSource f32_source(const std::string& dir) {
  const Checkpoint ck = Checkpoint::open(dir);
  MapSource src;
  for (const std::string& name : ck.names()) {
    const Tensor t = ck.view(name);
    Tensor f = t.ndim == 1 ? host_tensor(DType::F32, {t.dim(0)})
                           : host_tensor(DType::F32, {t.dim(0), t.dim(1)});
    convert_to_f32(t.data, t.dtype, t.numel(), f.ptr<float>());
    src.tensors[name] = f;
  }
  return src;
}

Matrix as_matrix(const Tensor& t) {
  Matrix m(t.dim(0), t.ndim == 1 ? 1 : t.dim(1));
  std::copy_n(t.ptr<float>(), t.numel(), m.v.data());
  return m;
}
Tensor as_tensor(const Matrix& m) {
  Tensor t = host_tensor(DType::F32, {m.rows, m.cols});
  std::copy(m.v.begin(), m.v.end(), t.ptr<float>());
  return t;
}

std::vector<float> logits_of(TensorSource& src, const ModelConfig& cfg,
                             const std::vector<int32_t>& prompt) {
  auto backend = make_cpu_backend(0, CpuPrecision::Exact);
  auto comm = make_single_comm();
  Model m(cfg, load_model_weights(src, cfg, *backend, comm->world()), *backend, *comm);
  std::vector<float> all;
  for (const auto& row : prefill_all_logits(m, prompt)) all.insert(all.end(), row.begin(), row.end());
  return all;
}

// Random positive scales folded into every layer of `model` (o_proj's tied per kv channel).
void expect_fold_keeps_logits(const std::string& model) {
  const std::string dir = testdata_dir() + "/models/" + model;
  const ModelConfig cfg = load_model_config(dir);
  MapSource src = f32_source(dir);
  const std::vector<int32_t> prompt = {1, 80, 147, 201, 282, 215, 286, 598, 662, 887};
  const std::vector<float> before = logits_of(src, cfg, prompt);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.25f, 4.0f);
  const std::vector<int32_t> cls = kv_channel_classes(cfg);
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const auto get = [&](const std::string& n) { return as_matrix(src.tensors.at(p + n)); };
    AwqLayerTensors t{get("self_attn.q_proj.weight"), get("self_attn.k_proj.weight"),
                      get("self_attn.v_proj.weight"), get("self_attn.o_proj.weight"),
                      get("mlp.gate_proj.weight"),    get("mlp.up_proj.weight"),
                      get("mlp.down_proj.weight"),    get("input_layernorm.weight").v,
                      get("post_attention_layernorm.weight").v, {}, {}};
    const std::string vb = p + "self_attn.v_proj.bias";
    if (src.has(vb)) t.v_bias = as_matrix(src.tensors.at(vb)).v;
    std::vector<float> s[kNumLinearInputs];
    for (int site = 0; site < kNumLinearInputs; ++site) {
      const int64_t in = site == 3 ? cfg.intermediate_size : cfg.hidden_size;
      for (int64_t c = 0; c < in; ++c) s[site].push_back(u(rng));
    }
    for (size_t c = 0; c < cls.size(); ++c) s[1][c] = s[1][size_t(cls[c])];  // tied per kv channel
    fold_awq_scales(t, s, cfg);
    EXPECT_NE(t.input_norm, get("input_layernorm.weight").v);
    const std::pair<const char*, const Matrix*> mats[] = {
        {"self_attn.q_proj.weight", &t.q}, {"self_attn.k_proj.weight", &t.k},
        {"self_attn.v_proj.weight", &t.v}, {"self_attn.o_proj.weight", &t.o},
        {"mlp.gate_proj.weight", &t.gate}, {"mlp.up_proj.weight", &t.up},
        {"mlp.down_proj.weight", &t.down}};
    for (const auto& [name, m] : mats) src.tensors[p + name] = as_tensor(*m);
    Matrix n1(int64_t(t.input_norm.size()), 1), n2(n1.rows, 1);
    n1.v = t.input_norm, n2.v = t.post_attention_norm;
    src.tensors[p + "input_layernorm.weight"] = as_tensor(n1).reshaped({n1.rows});
    src.tensors[p + "post_attention_layernorm.weight"] = as_tensor(n2).reshaped({n2.rows});
    if (!t.v_bias.empty()) {
      Matrix b(int64_t(t.v_bias.size()), 1);
      b.v = t.v_bias;
      src.tensors[vb] = as_tensor(b).reshaped({b.rows});
    }
  }
  const std::vector<float> after = logits_of(src, cfg, prompt);
  ASSERT_EQ(after.size(), before.size());
  const float tol = 1e-4f * (1.0f + max_abs(before));
  for (size_t i = 0; i < before.size(); ++i) ASSERT_NEAR(after[i], before[i], tol) << model << " " << i;
}

TEST(AwqFold, FoldedScalesLeaveTheModelsLogitsUnchanged) {
  TESSERA_REQUIRE_TESTDATA();
  expect_fold_keeps_logits("TinyStories-656K");
  expect_fold_keeps_logits("tiny-qwen2");  // v_proj bias, 4 query heads per kv head
}


double golden_perplexity(const std::string& dir, const nlohmann::json& g) {
  CpuModel m = load_cpu_model(dir);
  return evaluate_perplexity(*m.model, g["ids"].get<std::vector<int32_t>>(),
                             g["window"].get<int64_t>())
      .perplexity();
}

TEST(AwqCheckpoint, RtnCheckpointLoadsAsTheGoldensInt4) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string src = testdata_dir() + kModel, out = make_temp_dir("awq-rtn");
  const ModelConfig cfg = load_model_config(src);
  AwqOptions opt;
  opt.search_scales = opt.search_clip = false;
  int layers = 0;
  write_awq_checkpoint(src, cfg, nullptr, opt, out, [&](const AwqLayerReport&) { ++layers; });
  EXPECT_EQ(layers, 2);
  const nlohmann::json config = nlohmann::json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(config["quantization_config"]["quant_method"], "awq");
  EXPECT_EQ(config["quantization_config"]["group_size"], 128);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  // Every layer holds exactly the RTN codes of the original weights.
  CpuModel q = load_cpu_model(out);
  const Checkpoint ck = Checkpoint::open(src);
  const LayerWeights& lw = q.model->weights().layers[1];
  EXPECT_EQ(lw.down.format, WeightFormat::Int4);
  const Matrix down = as_matrix(ck.view("model.layers.1.mlp.down_proj.weight"));
  EXPECT_EQ(dequantize_weight(lw.down), dequantize_codes(quantize_int4_awq(down, 128)).v);
  // Perplexity: the golden's int4 g128 RTN (fp16 scales here), within 0.5%.
  const nlohmann::json g =
      nlohmann::json::parse(read_file(testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"));
  const double want = g["int4_g128"]["perplexity"].get<double>();
  EXPECT_NEAR(golden_perplexity(out, g), want, 0.005 * want);
  // The output is a quantized checkpoint now: quantizing it again is refused.
  EXPECT_THROW(write_awq_checkpoint(out, load_model_config(out), nullptr, opt,
                                    make_temp_dir("awq-again"), nullptr),
               UserError);
}

TEST(AwqCheckpoint, ActivationAwareScalesBeatRtnOnHeldOutText) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string src = testdata_dir() + kModel;
  const ModelConfig cfg = load_model_config(src);
  // Calibrate on tests/fixtures/calibration-stories.txt (not the evaluation text).
  const std::string text =
      read_file(std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/calibration-stories.txt");
  const std::vector<int32_t> ids = Tokenizer::from_dir(src).encode(text, true);
  ASSERT_GT(ids.size(), 1000u);
  ActivationRecorder rec(cfg.num_layers, 512);
  {
    CpuModel m = load_cpu_model(src);
    m.model->set_activation_observer(rec.observer());
    evaluate_perplexity(*m.model, ids, 512);
  }
  const std::string out = make_temp_dir("awq-scaled");
  std::vector<AwqLayerReport> reports;
  write_awq_checkpoint(src, cfg, &rec, AwqOptions{}, out,
                       [&](const AwqLayerReport& r) { reports.push_back(r); });
  ASSERT_EQ(reports.size(), 2u);
  for (const AwqLayerReport& r : reports)
    for (int s = 0; s < kNumLinearInputs; ++s) EXPECT_LE(r.loss[s], r.rtn_loss[s]);
  const nlohmann::json g =
      nlohmann::json::parse(read_file(testdata_dir() + "/perplexity/TinyStories-656K.ppl.json"));
  const double awq = golden_perplexity(out, g), rtn = g["int4_g128"]["perplexity"].get<double>();
  const double fp32 = g["fp32"]["perplexity"].get<double>();
  std::printf("[ perplexity ] fp32 %.4f  int4 RTN (golden) %.4f  int4 AWQ %.4f\n", fp32, rtn, awq);
  EXPECT_LT(awq, rtn - 0.2 * (rtn - fp32));  // recovers at least a fifth of RTN's loss
  EXPECT_GT(awq, fp32);
}

TEST(AwqCheckpoint, ModelsTheFormatCannotHoldAreClearErrors) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig cfg = load_model_config(testdata_dir() + kModel);
  AwqOptions opt;
  opt.group_size = 96;  // hidden 128 is not a multiple
  EXPECT_THROW(check_awq_quantizable(cfg, opt), UserError);
  opt.group_size = 12;  // not a multiple of 8
  EXPECT_THROW(check_awq_quantizable(cfg, opt), UserError);
  opt.group_size = 64;
  EXPECT_NO_THROW(check_awq_quantizable(cfg, opt));
  // Searches need calibration activations.
  EXPECT_THROW(write_awq_checkpoint(testdata_dir() + kModel, cfg, nullptr, AwqOptions{},
                                    make_temp_dir("awq-nocal"), nullptr),
               UserError);
}

}  // namespace
}  // namespace tessera::test
