// Sampling (greedy, top-k, top-p, temperature), shard rules as data, fp16/bf16 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "kernels/sampling.h"
#include "parallel/shard_rules.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "tests/test_util.h"

namespace tessera::test {

TEST(Sampling, GreedyTopKTopPAndDistribution) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  EXPECT_EQ(sample_cpu(logits.data(), 5, greedy, 0.99), 1);  // first max on ties
  SamplingParams k2;
  k2.top_k = 2;
  SamplingParams p, p1;
  p.top_p = 0.5f;   // each 3.0 logit holds ~0.40 of the mass: both are needed for 0.5
  p1.top_p = 0.3f;  // one suffices (the lower id first on ties)
  std::map<int, int> seen_k, seen_p, seen_p1, counts;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) {
    const double x = u(rng);
    ++seen_k[sample_cpu(logits.data(), 5, k2, x)];
    ++seen_p[sample_cpu(logits.data(), 5, p, x)];
    ++seen_p1[sample_cpu(logits.data(), 5, p1, x)];
    ++counts[sample_cpu(logits.data(), 5, SamplingParams{}, x)];
    EXPECT_EQ(sample_cpu(logits.data(), 5, k2, x), sample_cpu(logits.data(), 5, k2, x));
  }
  EXPECT_EQ(seen_k.size(), 2u);
  EXPECT_TRUE(seen_k.count(1) && seen_k.count(3));
  EXPECT_EQ(seen_p.size(), 2u);
  EXPECT_TRUE(seen_p.count(1) && seen_p.count(3));
  EXPECT_EQ(seen_p1.size(), 1u);
  EXPECT_TRUE(seen_p1.count(1));
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  for (int i = 0; i < 5; ++i) {
    const double want = std::exp(double(logits[size_t(i)])) / z;
    EXPECT_NEAR(double(counts[i]) / draws, want, 0.01) << "token " << i;
  }
}

TEST(ShardRules, RulesByName) {
  EXPECT_EQ(shard_rule_for("model.layers.3.self_attn.q_proj.weight").kind, SplitKind::Column);
  EXPECT_EQ(shard_rule_for("model.layers.3.self_attn.k_proj.bias").unit, SplitUnit::KvHeads);
  EXPECT_EQ(shard_rule_for("model.layers.3.self_attn.o_proj.weight").kind, SplitKind::Row);
  EXPECT_EQ(shard_rule_for("model.layers.0.mlp.up_proj.weight").kind, SplitKind::Column);
  EXPECT_EQ(shard_rule_for("model.layers.0.mlp.down_proj.weight").kind, SplitKind::Row);
  EXPECT_EQ(shard_rule_for("model.embed_tokens.weight").kind, SplitKind::Vocab);
  EXPECT_EQ(shard_rule_for("lm_head.weight").kind, SplitKind::Vocab);
  EXPECT_EQ(shard_rule_for("model.layers.0.input_layernorm.weight").kind, SplitKind::Replicated);
  EXPECT_EQ(shard_rule_for("model.norm.weight").kind, SplitKind::Replicated);
}

TEST(ShardRules, RangesAndKvReplication) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig q = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  const ShardRule kv = shard_rule_for("model.layers.0.self_attn.k_proj.weight");
  World w{1, 4, 1};
  EXPECT_EQ(local_dims(q, w).num_heads, 7);
  EXPECT_EQ(local_dims(q, w).num_kv_heads, 1);
  EXPECT_EQ(shard_range(kv, q, 512, w).begin, 128);
  const ModelConfig t = load_model_config(testdata_dir() + "/models/tiny-qwen2");  // 8 / 2 kv
  const int64_t expect_head[4] = {0, 0, 1, 1};  // tp 4: two ranks share each kv head
  for (int r = 0; r < 4; ++r) {
    World wr{r, 4, r};
    const Range rg = shard_range(kv, t, t.kv_size(), wr);
    EXPECT_EQ(rg.begin, expect_head[r] * t.head_dim);
    EXPECT_EQ(rg.size(), t.head_dim);
  }
  try {
    check_tp_compatible(t, 3);
    ADD_FAILURE() << "tp 3 accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("valid tp sizes: 1, 2, 4, 8"), std::string::npos);
  }
}

TEST(DType, HalfAndBfloatRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bf16_to_f32(0x3f81)), 0x3f81);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00);              // overflow to inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00);  // tie to even
  EXPECT_FLOAT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isinf(f16_to_f32(0xfc00)));
  for (uint32_t h = 0; h < 0x7c00; h += 7) EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h);
}

}  // namespace tessera::test
