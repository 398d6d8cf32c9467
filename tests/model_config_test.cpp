// config.json parsing: real configs and every kind of bad config.
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/model_config.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(ModelConfig, RealConfigs) {
  TESSERA_REQUIRE_TESTDATA();
  const std::string d = testdata_dir() + "/configs/";
  ModelConfig q = load_model_config(d + "qwen2.5-7b-instruct.json");
  EXPECT_EQ(q.model_type, "qwen2");
  EXPECT_EQ(q.num_layers, 28);
  EXPECT_EQ(q.num_kv_heads, 4);
  EXPECT_EQ(q.head_dim, 128);
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(q.sliding_window, 0);  // use_sliding_window false
  EXPECT_FALSE(q.tie_word_embeddings);
  ModelConfig l = load_model_config(d + "llama-3.1-8b-instruct.json");
  EXPECT_EQ(l.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(l.rope_scaling.factor, 8.0f);
  EXPECT_EQ(l.rope_scaling.original_max_position, 8192);
  EXPECT_EQ(l.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_TRUE(l.is_eos(128009));
  EXPECT_FALSE(l.attention_bias);
  ModelConfig m = load_model_config(d + "mistral-7b-v0.1.json");
  EXPECT_EQ(m.sliding_window, 4096);
  ModelConfig t = load_model_config(testdata_dir() + "/models/tiny-llama");
  EXPECT_EQ(t.head_dim, 16);
}

TEST(ModelConfig, BadConfigsNameTheSource) {
  const std::string base =
      R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,)"
      R"("num_key_value_heads":2,"intermediate_size":128,"vocab_size":100)";
  EXPECT_NO_THROW(parse_model_config(base + "}", "cfg.json"));
  struct Case { std::string text, mention; };
  const Case cases[] = {
      {"{not json", "invalid JSON"},
      {"[1,2]", "object"},
      {R"({"hidden_size":64})", "model_type"},
      {R"({"model_type":"gpt_neox"})", "llama, mistral, qwen2"},
      {R"({"model_type":"llama","num_hidden_layers":2})", "hidden_size"},
      {base + R"(,"rms_norm_eps":"small"})", "rms_norm_eps"},
      {R"({"model_type":"llama","hidden_size":"64"})", "hidden_size"},
      {base + R"(,"num_key_value_heads":3})", "multiple"},
      {base + R"(,"rope_scaling":{"rope_type":"yarn","factor":4}})", "yarn"},
      {base + R"(,"hidden_act":"gelu"})", "gelu"},
      {base + R"(,"eos_token_id":["x"]})", "eos_token_id"},
  };
  for (const auto& c : cases) {
    try {
      parse_model_config(c.text, "cfg.json");
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.mention), std::string::npos) << e.what();
    }
  }
}

TEST(ModelConfig, MissingFiles) {
  EXPECT_THROW(load_model_config("/nonexistent/dir"), UserError);
  EXPECT_THROW(load_model_config(make_temp_dir("noconfig")), UserError);
}

}  // namespace tessera::test
