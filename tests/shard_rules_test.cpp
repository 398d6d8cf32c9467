// Sharding as data: the split rule of every Hugging Face tensor name, the ranges each rank
// holds for tp 1, 2, 4 (qwen2.5-7b: 28 heads / 4 kv; tiny-qwen2: 8 heads / 2 kv, where tp 4
// replicates kv heads), and the tp-compatibility error.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parallel/shard_rules.h"
#include "runtime/error.h"
#include "runtime/model_config.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

std::string layer(int i, const std::string& rest) {
  return "model.layers." + std::to_string(i) + "." + rest;
}

void expect_rule(const std::string& name, SplitKind kind, SplitUnit unit) {
  const ShardRule r = shard_rule_for(name);
  EXPECT_EQ(int(r.kind), int(kind)) << name;
  EXPECT_EQ(int(r.unit), int(unit)) << name;
}

// Checks every rule's ranges for one model at one tp size.
void check_model(const ModelConfig& c, int tp) {
  SCOPED_TRACE("tp=" + std::to_string(tp));
  const int64_t hd = c.head_dim;
  const int64_t group = c.num_heads / c.num_kv_heads;
  const ShardRule q = shard_rule_for(layer(0, "self_attn.q_proj.weight"));
  const ShardRule qb = shard_rule_for(layer(0, "self_attn.q_proj.bias"));
  const ShardRule k = shard_rule_for(layer(0, "self_attn.k_proj.weight"));
  const ShardRule vb = shard_rule_for(layer(0, "self_attn.v_proj.bias"));
  const ShardRule o = shard_rule_for(layer(0, "self_attn.o_proj.weight"));
  const ShardRule up = shard_rule_for(layer(0, "mlp.up_proj.weight"));
  const ShardRule down = shard_rule_for(layer(0, "mlp.down_proj.weight"));
  const ShardRule emb = shard_rule_for("model.embed_tokens.weight");
  const ShardRule norm = shard_rule_for("model.norm.weight");
  int64_t q_next = 0, f_next = 0, v_next = 0;
  for (int r = 0; r < tp; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    const World w{r, tp, r};
    const LocalDims d = local_dims(c, w);
    EXPECT_EQ(d.num_heads * tp, c.num_heads);
    EXPECT_EQ(d.intermediate * tp, c.intermediate_size);
    // Query heads: consecutive, disjoint, covering all.
    const Range rq = shard_range(q, c, c.q_size(), w);
    EXPECT_EQ(rq.begin, q_next);
    EXPECT_EQ(rq.size(), d.num_heads * hd);
    q_next = rq.end;
    const Range rqb = shard_range(qb, c, c.q_size(), w);
    EXPECT_EQ(rqb.begin, rq.begin);  // a bias splits with its weight
    EXPECT_EQ(rqb.end, rq.end);
    const Range ro = shard_range(o, c, c.q_size(), w);  // o_proj's input features
    EXPECT_EQ(ro.begin, rq.begin);
    EXPECT_EQ(ro.end, rq.end);
    // KV heads: whole heads; every local query head's kv head is held by this rank, at the
    // local index the kernel uses (local head / local group size).
    const Range rk = shard_range(k, c, c.kv_size(), w);
    const Range rv = shard_range(vb, c, c.kv_size(), w);
    EXPECT_EQ(rk.begin, rv.begin);
    EXPECT_EQ(rk.end, rv.end);
    EXPECT_EQ(rk.begin % hd, 0);
    EXPECT_EQ(rk.size(), d.num_kv_heads * hd);
    EXPECT_GE(rk.begin, 0);
    EXPECT_LE(rk.end, c.kv_size());
    const int64_t local_group = d.num_heads / d.num_kv_heads;
    for (int64_t lh = 0; lh < d.num_heads; ++lh) {
      const int64_t global_q = rq.begin / hd + lh;
      const int64_t global_kv = global_q / group;
      EXPECT_EQ(global_kv, rk.begin / hd + lh / local_group) << "local head " << lh;
    }
    // MLP features: gate/up columns and down rows agree.
    const Range ru = shard_range(up, c, c.intermediate_size, w);
    const Range rd = shard_range(down, c, c.intermediate_size, w);
    EXPECT_EQ(ru.begin, f_next);
    EXPECT_EQ(ru.size(), d.intermediate);
    EXPECT_EQ(rd.begin, ru.begin);
    EXPECT_EQ(rd.end, ru.end);
    f_next = ru.end;
    // Vocabulary: consecutive, covering [0, vocab).
    const Range re = shard_range(emb, c, c.vocab_size, w);
    EXPECT_EQ(re.begin, v_next);
    EXPECT_EQ(re.begin, d.vocab_begin);
    EXPECT_EQ(re.size(), d.vocab_local);
    v_next = re.end;
    // Norms: everything, everywhere.
    const Range rn = shard_range(norm, c, c.hidden_size, w);
    EXPECT_EQ(rn.begin, 0);
    EXPECT_EQ(rn.end, c.hidden_size);
  }
  EXPECT_EQ(q_next, c.q_size());
  EXPECT_EQ(f_next, c.intermediate_size);
  EXPECT_EQ(v_next, c.vocab_size);
}

}  // namespace

TEST(ShardRuleFor, EveryHuggingFaceTensorName) {
  using K = SplitKind;
  using U = SplitUnit;
  for (int i : {0, 13, 27})
    for (const char* suffix : {".weight", ".bias"}) {
      const std::string s = suffix;
      expect_rule(layer(i, "self_attn.q_proj" + s), K::Column, U::QueryHeads);
      expect_rule(layer(i, "self_attn.k_proj" + s), K::Column, U::KvHeads);
      expect_rule(layer(i, "self_attn.v_proj" + s), K::Column, U::KvHeads);
      expect_rule(layer(i, "self_attn.o_proj" + s), K::Row, U::QueryHeads);
      expect_rule(layer(i, "mlp.gate_proj" + s), K::Column, U::Features);
      expect_rule(layer(i, "mlp.up_proj" + s), K::Column, U::Features);
      expect_rule(layer(i, "mlp.down_proj" + s), K::Row, U::Features);
    }
  expect_rule("model.embed_tokens.weight", K::Vocab, U::Features);
  expect_rule("lm_head.weight", K::Vocab, U::Features);
  for (const char* name : {"model.norm.weight", "model.layers.0.input_layernorm.weight",
                           "model.layers.5.post_attention_layernorm.weight",
                           "model.rotary_emb.inv_freq", "something.else"})
    expect_rule(name, K::Replicated, U::Features);
}

TEST(ShardRanges, Qwen25_7bTp124) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  for (int tp : {1, 2, 4}) check_model(c, tp);
  const LocalDims d4 = local_dims(c, World{3, 4, 3});
  EXPECT_EQ(d4.num_heads, 7);
  EXPECT_EQ(d4.num_kv_heads, 1);
  EXPECT_EQ(d4.intermediate, 18944 / 4);
  EXPECT_EQ(d4.vocab_begin, 3 * 152064 / 4);
  EXPECT_EQ(d4.vocab_local, 152064 / 4);
  // tp 2: rank 1 holds kv heads 2 and 3, query heads 14..27.
  const World w{1, 2, 1};
  const Range rk = shard_range(shard_rule_for(layer(0, "self_attn.k_proj.weight")), c, c.kv_size(), w);
  EXPECT_EQ(rk.begin, 2 * 128);
  EXPECT_EQ(rk.end, 4 * 128);
  const Range rq = shard_range(shard_rule_for(layer(0, "self_attn.q_proj.weight")), c, c.q_size(), w);
  EXPECT_EQ(rq.begin, 14 * 128);
  EXPECT_EQ(rq.end, 28 * 128);
}

TEST(ShardRanges, TinyQwen2ReplicatesKvHeadsAtTp4) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = load_model_config(testdata_dir() + "/models/tiny-qwen2");
  ASSERT_EQ(c.num_heads, 8);
  ASSERT_EQ(c.num_kv_heads, 2);
  for (int tp : {1, 2, 4}) check_model(c, tp);
  const ShardRule k = shard_rule_for(layer(1, "self_attn.k_proj.bias"));
  const int64_t kv_head_of_rank[4] = {0, 0, 1, 1};
  for (int r = 0; r < 4; ++r) {
    const Range rg = shard_range(k, c, c.kv_size(), World{r, 4, r});
    EXPECT_EQ(rg.begin, kv_head_of_rank[r] * c.head_dim) << "rank " << r;
    EXPECT_EQ(rg.size(), c.head_dim) << "rank " << r;
    EXPECT_EQ(local_dims(c, World{r, 4, r}).num_kv_heads, 1);
  }
}

TEST(ShardRanges, UnevenVocabularyIsCovered) {
  ModelConfig c;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.hidden_size = 64;
  c.intermediate_size = 64;
  c.vocab_size = 1001;  // not a multiple of 2 or 4
  for (int tp : {2, 4}) check_model(c, tp);
}

TEST(ShardRanges, IncompatibleTpListsValidSizes) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig tiny = load_model_config(testdata_dir() + "/models/tiny-qwen2");
  for (int tp : {3, 5, 16, 0}) {
    try {
      check_tp_compatible(tiny, tp);
      ADD_FAILURE() << "tp " << tp << " accepted";
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("1, 2, 4, 8"), std::string::npos) << msg;
      EXPECT_NE(msg.find("tp=" + std::to_string(tp)), std::string::npos) << msg;
    }
  }
  for (int tp : {1, 2, 4, 8}) EXPECT_NO_THROW(check_tp_compatible(tiny, tp));
  EXPECT_THROW(local_dims(tiny, World{0, 3, 0}), UserError);
  const ModelConfig q = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  try {
    check_tp_compatible(q, 3);
    ADD_FAILURE() << "tp 3 accepted for 28 heads";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("valid tp sizes: 1, 2, 4"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("1, 2, 4, 7"), std::string::npos) << msg;  // 7 ranks: 4 kv heads don't split
  }
}

}  // namespace tessera::test
