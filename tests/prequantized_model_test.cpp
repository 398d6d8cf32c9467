// AWQ / GPTQ checkpoints end to end (tests/prequant_checkpoint_util.h): the model loaded from
// them must give the logits of the same model with the known dequantized weights stored
// densely.
// Also: quantization_config parsing errors and the memory plan of such checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/model_config.h"
#include "tests/model_test_util.h"
#include "tests/prequant_checkpoint_util.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void expect_same_logits(const std::string& format, int64_t group, bool act_order) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("prequant-" + format + "-" + std::to_string(group) + (act_order ? "-ao" : ""));
  write_prequant_checkpoints(dir, format, group, act_order);
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
  write_prequant_checkpoints(dir, "awq", 128, false);
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
