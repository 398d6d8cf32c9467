// parse_model_config / load_model_config, case by case: each real config's fields, and each
// kind of bad config as its own UserError whose message names the source file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/error.h"
#include "runtime/model_config.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using json = nlohmann::json;

// A small valid llama config to break one field at a time.
json base_config() {
  return json{{"model_type", "llama"},     {"hidden_size", 64},  {"num_hidden_layers", 2},
              {"num_attention_heads", 4},  {"num_key_value_heads", 2},
              {"intermediate_size", 128}, {"vocab_size", 100}, {"hidden_act", "silu"}};
}

// Parses `text` as source "my/cfg.json"; expects a UserError naming the source and every
// string of `mentions`. Returns the message.
std::string expect_error(const std::string& text, const std::vector<std::string>& mentions) {
  const std::string src = "my/cfg.json";
  try {
    parse_model_config(text, src);
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(src), std::string::npos) << "source not named: " << msg;
    for (const auto& m : mentions) EXPECT_NE(msg.find(m), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << e.what() << " for " << text;
    return "";
  }
  ADD_FAILURE() << "accepted: " << text;
  return "";
}

std::string with(json j, const std::string& key, const json& value) {
  j[key] = value;
  return j.dump();
}

}  // namespace

TEST(ModelConfigCases, Qwen25_7b) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.hidden_size, 3584);
  EXPECT_EQ(c.num_layers, 28);
  EXPECT_EQ(c.num_heads, 28);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_size(), 28 * 128);
  EXPECT_EQ(c.kv_size(), 4 * 128);
  EXPECT_EQ(c.intermediate_size, 18944);
  EXPECT_EQ(c.vocab_size, 152064);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window is false in the file
  EXPECT_FLOAT_EQ(c.rope_theta, 1000000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
}

TEST(ModelConfigCases, Llama31_8bRopeScalingAndEosList) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/configs/llama-3.1-8b-instruct.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_TRUE(c.is_eos(128001) && c.is_eos(128008) && c.is_eos(128009));
  EXPECT_FALSE(c.is_eos(128000));
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.max_position_embeddings, 131072);
}

TEST(ModelConfigCases, MistralSlidingWindow) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/configs/mistral-7b-v0.1.json");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
}

TEST(ModelConfigCases, Qwen2WindowOnlyWhenEnabled) {
  json q = base_config();
  q["model_type"] = "qwen2";
  q["sliding_window"] = 32;
  q["use_sliding_window"] = false;
  EXPECT_EQ(parse_model_config(q.dump(), "q.json").sliding_window, 0);
  q["use_sliding_window"] = true;
  EXPECT_EQ(parse_model_config(q.dump(), "q.json").sliding_window, 32);
  q.erase("use_sliding_window");
  EXPECT_EQ(parse_model_config(q.dump(), "q.json").sliding_window, 0);
  // qwen2 always has q/k/v biases.
  EXPECT_TRUE(parse_model_config(q.dump(), "q.json").attention_bias);
  // Mistral with a null window is full attention.
  json m = base_config();
  m["model_type"] = "mistral";
  m["sliding_window"] = nullptr;
  EXPECT_EQ(parse_model_config(m.dump(), "m.json").sliding_window, 0);
}

TEST(ModelConfigCases, TinyModelsAndExplicitHeadDim) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string m = testdata_dir() + "/models/";
  const ModelConfig t = load_model_config(m + "tiny-llama");  // a directory
  EXPECT_EQ(t.head_dim, 16);
  EXPECT_EQ(t.num_heads, 4);
  EXPECT_EQ(t.num_kv_heads, 2);
  EXPECT_FLOAT_EQ(t.rms_norm_eps, 1e-5f);
  EXPECT_FALSE(t.tie_word_embeddings);
  const ModelConfig s = load_model_config(m + "TinyStories-656K/config.json");  // a file
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_EQ(s.max_position_embeddings, 512);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int64_t>{2}));
  const ModelConfig r = load_model_config(m + "tiny-llama3-rope");
  EXPECT_EQ(r.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(r.rope_scaling.original_max_position, 64);
  // head_dim given explicitly and different from hidden_size / heads wins.
  json j = base_config();
  j["head_dim"] = 32;  // hidden 64 / 4 heads would be 16
  const ModelConfig e = parse_model_config(j.dump(), "e.json");
  EXPECT_EQ(e.head_dim, 32);
  EXPECT_EQ(e.q_size(), 128);
  EXPECT_EQ(e.kv_size(), 64);
  j.erase("head_dim");
  EXPECT_EQ(parse_model_config(j.dump(), "e.json").head_dim, 16);
}

TEST(ModelConfigCases, DefaultsAndLinearScaling) {
  json j = base_config();
  j.erase("num_key_value_heads");
  const ModelConfig c = parse_model_config(j.dump(), "d.json");
  EXPECT_EQ(c.num_kv_heads, 4);  // no GQA unless stated
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.5}};
  const ModelConfig l = parse_model_config(j.dump(), "d.json");
  EXPECT_EQ(l.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_FLOAT_EQ(l.rope_scaling.factor, 2.5f);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse_model_config(j.dump(), "d.json").rope_scaling.type, RopeScaling::Type::None);
  j["eos_token_id"] = 7;
  EXPECT_EQ(parse_model_config(j.dump(), "d.json").eos_token_ids, (std::vector<int64_t>{7}));
}

TEST(ModelConfigCases, InvalidJsonAndNotAnObject) {
  expect_error("{\"model_type\": \"llama\",", {"invalid JSON"});
  expect_error("", {"invalid JSON"});
  expect_error("[1, 2, 3]", {"object"});
  expect_error("\"llama\"", {"object"});
}

TEST(ModelConfigCases, ModelType) {
  json j = base_config();
  j.erase("model_type");
  expect_error(j.dump(), {"model_type"});
  expect_error(with(base_config(), "model_type", 3), {"model_type"});
  const std::string msg =
      expect_error(with(base_config(), "model_type", "gpt_neox"), {"gpt_neox", "llama"});
  EXPECT_NE(msg.find("mistral"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen2"), std::string::npos) << msg;
}

TEST(ModelConfigCases, MissingRequiredFields) {
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads",
                          "intermediate_size", "vocab_size"}) {
    json j = base_config();
    j.erase(key);
    expect_error(j.dump(), {key});
  }
}

TEST(ModelConfigCases, NonIntegerFields) {
  expect_error(with(base_config(), "hidden_size", "64"), {"hidden_size"});
  expect_error(with(base_config(), "hidden_size", 64.5), {"hidden_size"});
  expect_error(with(base_config(), "num_hidden_layers", true), {"num_hidden_layers"});
  expect_error(with(base_config(), "num_key_value_heads", json::array({2})),
               {"num_key_value_heads"});
  expect_error(with(base_config(), "vocab_size", "many"), {"vocab_size"});
  expect_error(with(base_config(), "rms_norm_eps", "tiny"), {"rms_norm_eps"});
  expect_error(with(base_config(), "rope_theta", "big"), {"rope_theta"});
  expect_error(with(base_config(), "tie_word_embeddings", "yes"), {"tie_word_embeddings"});
  expect_error(with(base_config(), "eos_token_id", json::array({1, "two"})), {"eos_token_id"});
  expect_error(with(base_config(), "eos_token_id", "2"), {"eos_token_id"});
  expect_error(with(base_config(), "num_hidden_layers", 0), {"positive"});
  expect_error(with(base_config(), "hidden_size", -64), {"positive"});
}

TEST(ModelConfigCases, HeadsMultipleOfKvHeads) {
  expect_error(with(base_config(), "num_key_value_heads", 3), {"num_key_value_heads", "3"});
  json j = base_config();
  j["num_attention_heads"] = 7;
  j["num_key_value_heads"] = 7;
  expect_error(j.dump(), {"hidden_size"});  // 64 is not a multiple of 7 and no head_dim
  expect_error(with(base_config(), "head_dim", 15), {"head_dim"});
}

TEST(ModelConfigCases, RopeScalingTypes) {
  expect_error(with(base_config(), "rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}),
               {"yarn", "linear", "llama3"});
  expect_error(with(base_config(), "rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}),
               {"dynamic"});
  expect_error(with(base_config(), "rope_scaling", "linear"), {"rope_scaling"});
  expect_error(with(base_config(), "rope_scaling", {{"type", "linear"}, {"factor", 0.0}}),
               {"factor"});
  expect_error(with(base_config(), "rope_scaling",
                    {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                     {"high_freq_factor", 1.0}}),
               {"high_freq_factor"});
}

TEST(ModelConfigCases, HiddenAct) {
  expect_error(with(base_config(), "hidden_act", "gelu"), {"gelu", "silu"});
  expect_error(with(base_config(), "hidden_act", "relu"), {"relu"});
}

TEST(ModelConfigCases, LoadMissingDirAndConfig) {
  try {
    load_model_config("/nonexistent/tessera-model");
    ADD_FAILURE() << "accepted a missing directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tessera-model"), std::string::npos)
        << e.what();
  }
  const std::string dir = make_temp_dir("cfgcases");
  try {
    load_model_config(dir);
    ADD_FAILURE() << "accepted a directory without config.json";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
  // A config.json with bad content is named by its full path.
  std::ofstream(dir + "/config.json") << "{\"model_type\": \"gpt2\"}";
  try {
    load_model_config(dir);
    ADD_FAILURE() << "accepted gpt2";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gpt2"), std::string::npos) << e.what();
  }
}

}  // namespace tessera::test
