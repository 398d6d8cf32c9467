// AWQ / GPTQ checkpoints end to end: TinyStories-656K's real weights quantized here (RTN,
// fp16 scales) and packed by the test-side packers (tests/prequant_pack.h) into checkpoint
// directories with config.json's quantization_config; the model loaded from them must
// give the logits of the same model with the known dequantized weights stored densely.
// Also: quantization_config parsing errors and the memory plan of such checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/model_config.h"
#include "tests/model_test_util.h"
#include "tests/prequant_pack.h"
#include "tests/safetensors_writer.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool is_proj(const std::string& n) {
  return n.find("_proj.weight") != std::string::npos && n.rfind("model.layers.", 0) == 0;
}

// RTN of one [out, in] F32 weight over the groups of g_idx (min/max per group and row, fp16
// scale, z clamped to [z_lo, 15]); returns the known contents.
KnownInt4 quantize_known(const float* w, int64_t out, int64_t in, int64_t group,
                         const std::vector<int32_t>& g_idx, int z_lo) {
  KnownInt4 k;
  k.out = out, k.in = in, k.groups = (in + group - 1) / group, k.g_idx = g_idx;
  k.q.resize(size_t(out * in));
  k.z.resize(size_t(k.groups * out));
  k.s.resize(size_t(k.groups * out));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < k.groups; ++g) {
      float mn = 0, mx = 0;
      for (int64_t i = 0; i < in; ++i)
        if (g_idx[size_t(i)] == g) mn = std::min(mn, w[o * in + i]), mx = std::max(mx, w[o * in + i]);
      const float s = f16_to_f32(f32_to_f16(std::max((mx - mn) / 15.0f, 1e-6f)));
      const int z = std::clamp(int(std::nearbyint(-mn / s)), z_lo, 15);
      k.s[size_t(g * out + o)] = s, k.z[size_t(g * out + o)] = z;
      for (int64_t i = 0; i < in; ++i)
        if (g_idx[size_t(i)] == g)
          k.q[size_t(o * in + i)] =
              uint8_t(std::clamp(int(std::nearbyint(w[o * in + i] / s)) + z, 0, 15));
    }
  return k;
}

StTensor st(const std::string& name, const Tensor& t) {
  std::string bytes(static_cast<const char*>(t.data), t.nbytes());
  return {name, dtype_name(t.dtype), std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim),
          bytes};
}

// Writes DIR/quant (format "awq" | "gptq" | "gptq_v2") and DIR/dense from TinyStories-656K.
void write_checkpoints(const fs::path& dir, const std::string& format, int64_t group,
                       bool act_order) {
  const std::string src_dir = testdata_dir() + "/models/TinyStories-656K";
  const Checkpoint ck = Checkpoint::open(src_dir);
  std::vector<StTensor> quant, dense;
  std::mt19937 rng(11);
  for (const std::string& name : ck.names()) {
    const Tensor t = ck.read_rows(name, 0, ck.info(name).shape[0]);
    if (!is_proj(name)) {
      quant.push_back(st(name, t));
      dense.push_back(st(name, t));
      continue;
    }
    const int64_t out = t.dim(0), in = t.dim(1);
    std::vector<int32_t> gi;
    for (int64_t i = 0; i < in; ++i) gi.push_back(int32_t(i / group));
    if (act_order) std::shuffle(gi.begin(), gi.end(), rng);
    const KnownInt4 k = quantize_known(t.ptr<float>(), out, in, group, gi, format == "gptq");
    const std::string prefix = name.substr(0, name.size() - std::string(".weight").size());
    for (const auto& [n, packed] : packed_layer(prefix, k, format)) quant.push_back(st(n, packed));
    dense.push_back({name, "F32", {out, in}, as_bytes(k.dequantized())});
  }
  json cfg = json::parse(std::ifstream(src_dir + "/config.json"));
  for (const char* sub : {"quant", "dense"}) fs::create_directories(dir / sub);
  write_safetensors((dir / "dense" / "model.safetensors").string(), dense);
  std::ofstream(dir / "dense" / "config.json") << cfg.dump(2);
  cfg["quantization_config"] =
      format == "awq"
          ? json{{"quant_method", "awq"}, {"bits", 4}, {"group_size", group},
                 {"zero_point", true}, {"version", "gemm"}}
          : json{{"quant_method", "gptq"}, {"bits", 4}, {"group_size", group},
                 {"desc_act", act_order}, {"sym", false}, {"checkpoint_format", format}};
  write_safetensors((dir / "quant" / "model.safetensors").string(), quant);
  std::ofstream(dir / "quant" / "config.json") << cfg.dump(2);
}

void expect_same_logits(const std::string& format, int64_t group, bool act_order) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("prequant-" + format + "-" + std::to_string(group) + (act_order ? "-ao" : ""));
  write_checkpoints(dir, format, group, act_order);
  CpuModel q = load_cpu_model((dir / "quant").string());
  CpuModel d = load_cpu_model((dir / "dense").string());
  EXPECT_LT(double(q.model->weights().bytes), 0.6 * double(d.model->weights().bytes));
  const std::vector<int32_t> prompt = {1, 400, 73, 1024, 9, 311, 77, 5, 1800, 42, 42, 7};
  const auto lq = prefill_all_logits(*q.model, prompt);
  const auto ld = prefill_all_logits(*d.model, prompt);
  for (size_t t = 0; t < prompt.size(); ++t) {
    float diff = 0;
    for (size_t v = 0; v < lq[t].size(); ++v) diff = std::max(diff, std::fabs(lq[t][v] - ld[t][v]));
    EXPECT_LT(diff, 1e-4f * (1 + max_abs(ld[t]))) << format << " position " << t;
  }
  std::vector<int32_t> ids_q, ids_d;
  greedy_decode(*q.model, prompt, 8, &ids_q);
  greedy_decode(*d.model, prompt, 8, &ids_d);
  EXPECT_EQ(ids_q, ids_d) << format;
  fs::remove_all(dir);
}

TEST(PrequantizedModel, AwqCheckpointMatchesItsDequantizedTwin) {
  TESSERA_REQUIRE_TESTDATA();
  expect_same_logits("awq", 128, false);
}

TEST(PrequantizedModel, GptqActOrderCheckpointMatchesItsDequantizedTwin) {
  TESSERA_REQUIRE_TESTDATA();
  expect_same_logits("gptq", 64, true);
  expect_same_logits("gptq_v2", 128, false);
  expect_same_logits("gptq_v2", 128, false);
}

std::string config_error(const json& q) {
  json c = {{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 1},
            {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 128},
            {"vocab_size", 100}, {"quantization_config", q}};
  try {
    parse_model_config(c.dump(), "config.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

TEST(PrequantizedModel, UnsupportedQuantizationConfigsAreClearErrors) {
  EXPECT_NE(config_error({{"quant_method", "bitsandbytes"}}).find(
                "quant_method \"bitsandbytes\" is not supported (supported: awq, gptq"),
            std::string::npos);
  EXPECT_NE(config_error({{"quant_method", "gptq"}, {"bits", 8}}).find("8-bit GPTQ is not supported"),
            std::string::npos);
  EXPECT_NE(config_error({{"quant_method", "awq"}, {"version", "gemv"}}).find("AWQ version \"gemv\""),
            std::string::npos);
  EXPECT_NE(config_error({{"quant_method", "gptq"}, {"group_size", 0}}).find("group_size must be"),
            std::string::npos);
  EXPECT_NE(config_error({{"quant_method", "gptq"}, {"checkpoint_format", "marlin"}})
                .find("checkpoint_format \"marlin\""),
            std::string::npos);
  EXPECT_EQ(config_error({{"quant_method", "gptq"}, {"bits", 4}, {"group_size", -1}}), "no error");
  const ModelConfig awq = parse_model_config(
      json{{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 1},
           {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 128},
           {"vocab_size", 100},
           {"quantization_config", {{"quant_method", "awq"}, {"w_bit", 4}, {"q_group_size", 64}}}}
          .dump(),
      "config.json");
  EXPECT_EQ(awq.prequant.method, PrequantConfig::Method::Awq);
  EXPECT_EQ(awq.prequant.group_size, 64);
}

TEST(PrequantizedModel, WeightsInt8OnA4BitCheckpointIsAClearError) {
  TESSERA_REQUIRE_TESTDATA();
  const fs::path dir = fs::path(::testing::TempDir()) / "prequant-int8-error";
  write_checkpoints(dir, "awq", 128, false);
  const ModelConfig cfg = load_model_config((dir / "quant").string());
  auto backend = make_cpu_backend(1);
  auto src = open_checkpoint_source((dir / "quant").string());
  try {
    load_model_weights(*src, cfg, *backend, World{}, WeightFormat::Int8);
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("already 4-bit (AWQ): --weights int8 cannot apply"),
              std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// The AWQ checkpoint with layer 0's q_proj left unquantized, as modules_to_not_convert does.
class PartlyQuantized final : public TensorSource {
 public:
  PartlyQuantized(TensorSource& quant, TensorSource& dense) : quant_(quant), dense_(dense) {}
  bool has(const std::string& n) const override {
    if (n.rfind(kLayer, 0) == 0) return n == std::string(kLayer) + ".weight";
    return quant_.has(n);
  }
  std::vector<int64_t> shape(const std::string& n) const override { return of(n).shape(n); }
  Tensor rows(const std::string& n, int64_t r0, int64_t r1) override { return of(n).rows(n, r0, r1); }
  Tensor cols(const std::string& n, int64_t c0, int64_t c1) override { return of(n).cols(n, c0, c1); }
  std::string describe(const std::string& n) const override { return of(n).describe(n); }

 private:
  static constexpr const char* kLayer = "model.layers.0.self_attn.q_proj";
  TensorSource& of(const std::string& n) const { return n.rfind(kLayer, 0) == 0 ? dense_ : quant_; }
  TensorSource& quant_;
  TensorSource& dense_;
};

TEST(PrequantizedModel, LayersWithoutQweightLoadAsStoredEvenWithWeightsInt4) {
  TESSERA_REQUIRE_TESTDATA();
  const fs::path dir = fs::path(::testing::TempDir()) / "prequant-not-converted";
  write_checkpoints(dir, "awq", 128, false);
  const ModelConfig cfg = load_model_config((dir / "quant").string());
  auto backend = make_cpu_backend(1);
  auto quant = open_checkpoint_source((dir / "quant").string());
  auto dense = open_checkpoint_source((dir / "dense").string());
  PartlyQuantized src(*quant, *dense);
  for (WeightFormat f : {WeightFormat::Dense, WeightFormat::Int4}) {  // stored | int4 / auto
    const ModelWeights w = load_model_weights(src, cfg, *backend, World{}, f);
    EXPECT_EQ(w.layers[0].q.format, WeightFormat::Dense);
    EXPECT_EQ(w.layers[0].q.weight.dtype, DType::F32);
    EXPECT_EQ(w.layers[0].k.format, WeightFormat::Int4);
    EXPECT_EQ(w.layers[1].q.format, WeightFormat::Int4);
  }
  fs::remove_all(dir);
}

// Random weights (--load-format dummy) of a config with a quantization_config come in the
// checkpoint's packed layout, so bench and serve load what the plan counted (int4).
TEST(PrequantizedModel, DummyWeightsOfAQuantizedConfigTakeItsPackedLayout) {
  TESSERA_REQUIRE_TESTDATA();
  const json base = json::parse(read_file(testdata_dir() + "/models/TinyStories-656K/config.json"));
  const struct { json q; bool perm; } cases[] = {
      {{{"quant_method", "awq"}, {"bits", 4}, {"group_size", 64}, {"version", "gemm"}}, false},
      {{{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 64}, {"desc_act", true}}, true}};
  auto backend = make_cpu_backend(1);
  for (const auto& c : cases) {
    json j = base;
    j["quantization_config"] = c.q;
    const ModelConfig cfg = parse_model_config(j.dump(), "config.json");
    for (int tp : {1, 2})
      for (int rank = 0; rank < tp; ++rank) {
        World world;
        world.rank = rank, world.size = tp;
        auto src = make_dummy_source(cfg, DType::F32, 1);
        const ModelWeights w = load_model_weights(*src, cfg, *backend, world);
        const LayerWeights& l = w.layers[1];
        for (const LinearWeight* lw : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) {
          EXPECT_EQ(lw->format, WeightFormat::Int4) << c.q.dump();
          EXPECT_EQ(lw->group_size, 64);
          EXPECT_EQ(lw->input_perm.empty(), !c.perm) << c.q.dump() << " tp " << tp;
        }
      }
    auto comm = make_single_comm();
    auto src = make_dummy_source(cfg, DType::F32, 1);
    Model m(cfg, load_model_weights(*src, cfg, *backend, comm->world()), *backend, *comm);
    for (const auto& row : prefill_all_logits(m, {1, 2, 3, 4}))
      for (float v : row) ASSERT_TRUE(std::isfinite(v));
  }
}

// Qwen2.5-7B as a GPTQ checkpoint on a T4: int4 weights as stored (group 128 like tessera's
// own int4), act-order adding one I32 per input of every *_proj layer:
// 4 * (q, k, v, gate, up: 5 x H inputs + o: H + down: I) bytes a layer.
TEST(PrequantizedModel, PlanCountsTheCheckpointsInt4Layout) {
  TESSERA_REQUIRE_TESTDATA();
  ModelConfig c = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  PlanRequest r;
  r.model = c;
  r.device = *known_gpu("t4");
  r.weights = WeightChoice::INT4;
  const Plan own = make_plan(r);
  c.prequant.method = PrequantConfig::Method::Gptq;
  c.prequant.group_size = 128;
  r.model = c;
  r.weights.reset();
  const Plan gptq = make_plan(r);
  EXPECT_EQ(gptq.weights, WeightChoice::INT4);
  EXPECT_EQ(gptq.weights_bytes_per_rank(), own.weights_bytes_per_rank());
  c.prequant.desc_act = true;
  r.model = c;
  const int64_t H = 3584, I = 18944;
  EXPECT_EQ(make_plan(r).weights_bytes_per_rank() - own.weights_bytes_per_rank(),
            28 * 4 * (5 * H + H + I));
  r.weights_auto = true;
  EXPECT_EQ(make_plan(r).weights, WeightChoice::INT4);
  r.weights_auto = false;
  r.weights = WeightChoice::INT8;
  EXPECT_THROW(make_plan(r), UserError);
}

}  // namespace
}  // namespace tessera::test
