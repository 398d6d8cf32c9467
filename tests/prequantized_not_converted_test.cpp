// A pre-quantized checkpoint's quantization_config.modules_to_not_convert: the layers it
// names are stored dense and load as stored; the memory plan counts exactly the bytes the
// loader holds (with and without such layers); a layer whose storage disagrees with the list
// is a clear error, not a silent difference between plan and allocation.
#include <gtest/gtest.h>

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

const char* kQ0 = "model.layers.0.self_attn.q_proj";
const char* kDown1 = "model.layers.1.mlp.down_proj";

fs::path temp_dir(const std::string& name) { return fs::path(::testing::TempDir()) / name; }

ModelWeights load(const fs::path& dir, WeightFormat f) {
  const ModelConfig cfg = load_model_config(dir.string());
  auto backend = make_cpu_backend(1);
  auto src = open_checkpoint_source(dir.string());
  return load_model_weights(*src, cfg, *backend, World{}, f);
}

std::string load_error(const fs::path& dir) {
  try {
    load(dir, WeightFormat::Dense);
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

int64_t planned_weight_bytes(const ModelConfig& c) {
  PlanRequest r;
  r.model = c;
  r.device = host_device();
  return make_plan(r).weights_bytes_per_rank();
}

TEST(PrequantNotConverted, ConfigListsModuleNamesMatchedAsSubstrings) {
  json c = {{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 1},
            {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 128},
            {"vocab_size", 100}};
  c["quantization_config"] = {{"quant_method", "awq"},
                              {"modules_to_not_convert", {"layers.1.mlp", "q_proj"}}};
  const PrequantConfig q = parse_model_config(c.dump(), "config.json").prequant;
  EXPECT_TRUE(q.skips("model.layers.1.mlp.down_proj"));
  EXPECT_TRUE(q.skips("model.layers.7.self_attn.q_proj"));
  EXPECT_FALSE(q.skips("model.layers.7.self_attn.k_proj"));
  EXPECT_FALSE(q.skips("model.layers.10.mlp.up_proj"));  // "layers.1." is not in "layers.10."
  c["quantization_config"]["modules_to_not_convert"] = nullptr;  // AutoAWQ's default
  EXPECT_FALSE(parse_model_config(c.dump(), "config.json").prequant.skips("q_proj"));
  for (const json& bad : {json("q_proj"), json::array({1}), json::array({""})}) {
    c["quantization_config"]["modules_to_not_convert"] = bad;
    try {
      parse_model_config(c.dump(), "config.json");
      ADD_FAILURE() << "expected an error for " << bad.dump();
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "quantization_config.modules_to_not_convert must be a list of module names"),
                std::string::npos) << e.what();
    }
  }
}

// GPTQModel's quantization_config.dynamic: "-:" patterns exclude the modules they match at
// the start of the name (re.match); overrides of other modules' quantization are errors.
TEST(PrequantNotConverted, GptqModelDynamicExclusionsMatchFromTheStart) {
  json c = {{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 1},
            {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 128},
            {"vocab_size", 100}};
  c["quantization_config"] = {{"quant_method", "gptq"},
                              {"dynamic", {{R"(-:model\.layers\.1\..*)", json::object()},
                                           {R"(-:layers\.2\.)", json::object()}}}};
  const PrequantConfig q = parse_model_config(c.dump(), "config.json").prequant;
  EXPECT_TRUE(q.skips("model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(q.skips("model.layers.10.mlp.down_proj"));
  EXPECT_FALSE(q.skips("model.layers.2.mlp.down_proj"));  // matched only from the start
  const struct { json dynamic; const char* error; } bad[] = {
      {{{"+:.*down_proj", {{"bits", 8}}}}, "\"+:.*down_proj\" overrides the quantization"},
      {{{R"(model\.layers\.0\..*)", {{"group_size", 32}}}},
       "per-module overrides are not supported"},
      {{{"-:model(", json::object()}}, "\"-:model(\" is not a regular expression"},
      {json::array({"-:x"}), "quantization_config.dynamic must be an object"}};
  for (const auto& b : bad) {
    c["quantization_config"]["dynamic"] = b.dynamic;
    try {
      parse_model_config(c.dump(), "config.json");
      ADD_FAILURE() << "expected an error for " << b.dynamic.dump();
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(b.error), std::string::npos) << e.what();
    }
  }
}

// Layer 0's q_proj and layer 1's down_proj stored dense: they load as stored (F32 here) even
// with --weights int4, the rest as int4, and the model gives its dense twin's logits.
TEST(PrequantNotConverted, ListedLayersLoadAsStoredAndTheModelMatchesItsTwin) {
  TESSERA_REQUIRE_TESTDATA();
  for (const char* format : {"awq", "gptq"}) {
    const fs::path dir = temp_dir(std::string("prequant-nc-") + format);
    write_prequant_checkpoints(dir, format, 64, false,
                               {{kQ0, kDown1}, {"layers.0.self_attn.q_proj", kDown1}, {}});
    for (WeightFormat f : {WeightFormat::Dense, WeightFormat::Int4}) {  // stored | int4 / auto
      const ModelWeights w = load(dir / "quant", f);
      EXPECT_EQ(w.layers[0].q.format, WeightFormat::Dense) << format;
      EXPECT_EQ(w.layers[0].q.weight.dtype, DType::F32);
      EXPECT_EQ(w.layers[1].down.format, WeightFormat::Dense);
      EXPECT_EQ(w.layers[0].k.format, WeightFormat::Int4);
      EXPECT_EQ(w.layers[0].down.format, WeightFormat::Int4);
      EXPECT_EQ(w.layers[1].q.format, WeightFormat::Int4);
    }
    CpuModel q = load_cpu_model((dir / "quant").string());
    CpuModel d = load_cpu_model((dir / "dense").string());
    const std::vector<int32_t> prompt = {1, 400, 73, 1024, 9, 311, 77, 5};
    const auto lq = prefill_all_logits(*q.model, prompt);
    const auto ld = prefill_all_logits(*d.model, prompt);
    for (size_t t = 0; t < prompt.size(); ++t)
      for (size_t v = 0; v < lq[t].size(); ++v)
        ASSERT_NEAR(lq[t][v], ld[t][v], 1e-4f * (1 + max_abs(ld[t]))) << format << " " << t;
    fs::remove_all(dir);
  }
}

// The plan of a checkpoint directory is the bytes its loaded weights take on the CPU, for a
// fully packed checkpoint (AWQ; GPTQ act-order with its permutations) and partly packed ones
// (modules_to_not_convert; GPTQModel's dynamic exclusions).
TEST(PrequantNotConverted, PlanEqualsTheLoadedWeightBytes) {
  TESSERA_REQUIRE_TESTDATA();
  const struct { const char* format; bool act_order; NotConverted nc; } cases[] = {
      {"awq", false, {}},
      {"gptq", true, {}},
      {"awq", false, {{kQ0, kDown1}, {"layers.0.self_attn.q_proj", kDown1}, {}}},
      {"gptq", true, {{"model.layers.0.mlp.down_proj", kDown1}, {"mlp.down_proj"}, {}}},
      {"gptq", false,
       {{kDown1, kQ0}, {}, {R"(model\.layers\.1\.mlp\.down)", R"(.*\.0\.self_attn\.q_)"}}},
  };
  for (const auto& c : cases) {
    const fs::path dir = temp_dir(std::string("prequant-plan-") + c.format);
    write_prequant_checkpoints(dir, c.format, 64, c.act_order, c.nc);
    const ModelWeights w = load(dir / "quant", WeightFormat::Dense);
    EXPECT_EQ(planned_weight_bytes(load_model_config((dir / "quant").string())), int64_t(w.bytes))
        << c.format << " with " << c.nc.dense.size() << " layers not converted";
    fs::remove_all(dir);
  }
}

// A layer stored dense but not listed, or listed but stored packed: the plan would not be the
// allocation, so loading stops with a message naming the layer.
TEST(PrequantNotConverted, StorageThatDisagreesWithTheListIsAClearError) {
  TESSERA_REQUIRE_TESTDATA();
  const fs::path dir = temp_dir("prequant-nc-errors");
  write_prequant_checkpoints(dir, "awq", 64, false, {{kQ0}, {}, {}});
  EXPECT_NE(load_error(dir / "quant").find(kQ0), std::string::npos) << load_error(dir / "quant");
  EXPECT_NE(load_error(dir / "quant")
                .find(": unquantized in a AWQ checkpoint, but neither quantization_config."
                      "modules_to_not_convert nor a dynamic exclusion names it"),
            std::string::npos) << load_error(dir / "quant");
  fs::remove_all(dir);
  write_prequant_checkpoints(dir, "gptq", 64, false, {{}, {kDown1}, {}});
  EXPECT_NE(load_error(dir / "quant")
                .find(": packed, but quantization_config leaves it unquantized "
                      "(modules_to_not_convert or a dynamic exclusion names it; expected a "
                      "dense " + std::string(kDown1) + ".weight)"),
            std::string::npos) << load_error(dir / "quant");
  fs::remove_all(dir);
}

// --load-format dummy of such a config makes the listed layers dense, as a checkpoint has them.
TEST(PrequantNotConverted, DummyWeightsLeaveListedLayersDense) {
  TESSERA_REQUIRE_TESTDATA();
  json j = json::parse(read_file(testdata_dir() + "/models/TinyStories-656K/config.json"));
  j["quantization_config"] = {{"quant_method", "gptq"}, {"group_size", 64},
                              {"modules_to_not_convert", {"self_attn.o_proj"}}};
  const ModelConfig cfg = parse_model_config(j.dump(), "config.json");
  auto backend = make_cpu_backend(1);
  auto src = make_dummy_source(cfg, DType::F32, 1);
  const ModelWeights w = load_model_weights(*src, cfg, *backend, World{});
  for (const LayerWeights& l : w.layers) {
    EXPECT_EQ(l.o.format, WeightFormat::Dense);
    EXPECT_EQ(l.q.format, WeightFormat::Int4);
    EXPECT_EQ(l.down.format, WeightFormat::Int4);
  }
  EXPECT_EQ(planned_weight_bytes(cfg), int64_t(w.bytes));
}

}  // namespace
}  // namespace tessera::test
