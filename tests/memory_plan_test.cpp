// The memory plan against numbers computed here by hand from the formulas in
// runtime/memory_plan.h (never against tessera's own output): Qwen2.5-7B on a T4 in bf16
// (does not fit), int8 and int4 (fit), tensor parallel shards, auto modes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "tests/qwen7b_plan_numbers.h"
#include "tests/test_util.h"

namespace tessera::test {
namespace {

using namespace qwen7b;

ModelConfig qwen7b() {
  const ModelConfig c = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  EXPECT_EQ(c.num_layers, L);
  EXPECT_EQ(c.hidden_size, H);
  EXPECT_EQ(c.num_heads, NH);
  EXPECT_EQ(c.num_kv_heads, KVH);
  EXPECT_EQ(c.head_dim, D);
  EXPECT_EQ(c.vocab_size, V);
  EXPECT_EQ(c.intermediate_size, I);
  return c;
}

PlanRequest on_t4(const ModelConfig& c) {
  PlanRequest r;
  r.model = c;
  r.device = *known_gpu("t4");
  return r;
}

TEST(MemoryPlan, KnownCardsAreNvidiaSmiTotals) {
  EXPECT_EQ(known_gpu("t4")->total_bytes, 15360 * MiB);
  EXPECT_FALSE(known_gpu("t4")->bf16);
  EXPECT_EQ(known_gpu("a100-80g")->total_bytes, 81920 * MiB);
  EXPECT_EQ(known_gpu("h100")->total_bytes, 81559 * MiB);
  EXPECT_FALSE(known_gpu("t5").has_value());
  EXPECT_EQ(known_gpu_by_device_name("Tesla T4")->name, "t4");
  EXPECT_EQ(known_gpu_by_device_name("NVIDIA A100-SXM4-80GB")->name, "a100-80g");
  EXPECT_EQ(known_gpu_by_device_name("NVIDIA A100-PCIE-40GB")->name, "a100-40g");
  EXPECT_FALSE(known_gpu_by_device_name("NVIDIA L40S").has_value());  // not "L4"
}

TEST(MemoryPlan, KvBytesPerToken) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.weights = WeightChoice::INT4;
  EXPECT_EQ(make_plan(r).kv_bytes_per_token, 57344);  // 2 x 28 x 4 x 128 x 2
  r.kv = KvDtype::INT8;                               // + one F32 scale per token and head
  EXPECT_EQ(make_plan(r).kv_bytes_per_token, 2 * 28 * 4 * (128 + 4));
  r.kv = KvDtype::FP32;
  EXPECT_EQ(make_plan(r).kv_bytes_per_token, 2 * 28 * 4 * 128 * 4);
}

TEST(MemoryPlan, Bf16SevenBDoesNotFitT4AndOptionsIncludeInt4) {
  TESSERA_REQUIRE_TESTDATA();
  const Plan p = make_plan(on_t4(qwen7b()));  // weights as stored: bf16, as fp16 on a T4
  EXPECT_EQ(p.weights, WeightChoice::FP16);
  EXPECT_EQ(p.compute, DType::F16);
  const WeightBytes& w = p.ranks.at(0).weights;
  EXPECT_EQ(w.embeddings, V * H * 2);
  EXPECT_EQ(w.lm_head, V * H * 2);
  EXPECT_EQ(w.layers, L * (kProjParams * 2 + kNormsBiases) + H * 4);
  EXPECT_EQ(p.ranks[0].workspace, kWorkspace);
  EXPECT_EQ(p.ranks[0].reserve.total(), kReserveTp1);
  EXPECT_EQ(p.ranks[0].usable, kT4Usable);
  EXPECT_LT(p.ranks[0].kv_budget, 0);  // ~14.2 GiB of weights > 13.5 GiB usable
  EXPECT_FALSE(p.fits);
  EXPECT_EQ(p.max_model_len, 32768);
  EXPECT_EQ(p.kv_blocks, 0);
  bool int4 = false, int8 = false, tp2 = false;
  for (const PlanOption& o : p.options) {
    EXPECT_TRUE(o.fits) << o.change;
    int4 |= o.change == "--weights int4";
    int8 |= o.change == "--weights int8";
    tp2 |= o.change == "--tp 2";
    EXPECT_NE(o.change, "--kv-cache int8");  // the weights alone do not fit
  }
  EXPECT_TRUE(int4 && int8 && tp2);
}

TEST(MemoryPlan, Int4SevenBOnT4HoldsOver100kTokens) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.weights = WeightChoice::INT4;
  const Plan p = make_plan(r);
  // int4: half a byte per weight + per (row, group of 128) an F32 scale and a U8 zero. Every
  // input width here (3584, 18944) is a multiple of 128, so groups = params / 128.
  const int64_t layer = kProjParams / 2 + kProjParams / 128 * 5 + kNormsBiases;
  const int64_t weights = 2 * V * H * 2 + L * layer + H * 4;  // fp16 tables + layers
  EXPECT_EQ(p.ranks.at(0).weights.total(), weights);
  EXPECT_EQ(weights, 5698861056);
  EXPECT_EQ(p.ranks[0].reserve.dequant_scratch, kDequantScratch);
  const int64_t blocks =
      (kT4Usable - weights - kWorkspace - kReserveTp1 - kDequantScratch) / (16 * 57344);
  EXPECT_EQ(blocks, 8571);
  EXPECT_EQ(p.kv_blocks, blocks);
  EXPECT_TRUE(p.fits);
  EXPECT_GT(p.kv_tokens(), 100000);
  EXPECT_EQ(p.max_model_len, 32768);
  EXPECT_EQ(p.max_concurrent_at_max_len, blocks / (32768 / 16));  // 4
  EXPECT_TRUE(p.options.empty());
}

TEST(MemoryPlan, Int8ScalesPerOutputRow) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.weights = WeightChoice::INT8;
  const Plan p = make_plan(r);
  EXPECT_EQ(p.ranks.at(0).weights.layers,
            L * (kProjParams + kProjRows * 4 + kNormsBiases) + H * 4);
  EXPECT_EQ(p.ranks[0].weights.embeddings, V * H * 2);  // tables stay fp16
  EXPECT_TRUE(p.fits);
}

TEST(MemoryPlan, TensorParallelShardsAndValidSizes) {
  TESSERA_REQUIRE_TESTDATA();
  const ModelConfig c = qwen7b();
  // tp must divide 28 heads and 18944 and split (or replicate) 4 kv heads: 1, 2, 4 (7 divides
  // the heads but not 18944).
  EXPECT_EQ(valid_tp_sizes(c, 28), (std::vector<int>{1, 2, 4}));
  PlanRequest r = on_t4(c);
  r.tp = 3;
  try {
    make_plan(r);
    ADD_FAILURE() << "tp 3 accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("valid tp sizes: 1, 2, 4"), std::string::npos)
        << e.what();
  }
  r.tp = 2;
  r.weights = WeightChoice::FP16;
  const Plan p = make_plan(r);
  ASSERT_EQ(p.ranks.size(), 2u);
  for (const RankPlan& rp : p.ranks) {
    EXPECT_EQ(rp.vocab_local, V / 2);
    EXPECT_EQ(rp.weights.embeddings, V / 2 * H * 2);
    EXPECT_EQ(rp.weights.layers,
              L * (kProjParams / 2 * 2 + 2 * H * 4 + (H + 1024) / 2 * 4) + H * 4);
    EXPECT_EQ(rp.reserve.nccl, 256 * MiB);
  }
  EXPECT_EQ(p.kv_bytes_per_token, 2 * 28 * 2 * 128 * 2);  // 2 kv heads per rank
  // residual and proj F32; normed, q and attn (1792 a rank), k and v (256), gate/up/act.
  const int64_t ws = 2 * 2048 * H * 4 + 2048 * H * 2 + 2 * 2048 * 1792 * 2 +
                     2 * 2048 * 256 * 2 + 3 * 2048 * (I / 2) * 2 + 64 * H * 2 + 64 * (V / 2) * 4;
  EXPECT_EQ(p.ranks[0].workspace, ws);
  EXPECT_TRUE(p.fits);  // two T4s hold the 7B in fp16
}

TEST(MemoryPlan, KvHeadsReplicatedWhenFewerThanRanks) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 512, c.num_layers = 2, c.num_heads = 8, c.num_kv_heads = 2, c.head_dim = 64;
  c.intermediate_size = 1024, c.vocab_size = 1001, c.max_position_embeddings = 4096;
  c.torch_dtype = DType::BF16;
  PlanRequest r;
  r.model = c;
  r.device = *known_gpu("a10g");
  r.tp = 4;  // 2 kv heads over 4 ranks: each rank holds one
  const Plan p = make_plan(r);
  EXPECT_EQ(p.compute, DType::BF16);
  EXPECT_EQ(p.kv_bytes_per_token, 2 * 2 * 1 * 64 * 2);
  // Vocab 1001 over 4 ranks: 251 rows on ranks 0-2, 248 on rank 3.
  EXPECT_EQ(p.ranks[0].vocab_local, 251);
  EXPECT_EQ(p.ranks[3].vocab_local, 248);
  EXPECT_EQ(p.ranks[3].weights.lm_head, 248 * 512 * 2);
  EXPECT_EQ(p.weights_bytes_per_rank(), p.ranks[0].weights.total());
  EXPECT_EQ(valid_tp_sizes(c, 16), (std::vector<int>{1, 2, 4, 8}));
}

TEST(MemoryPlan, Int4GroupsRoundUpAndTiedTableCountedOnce) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 200, c.num_layers = 1, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 100;
  c.intermediate_size = 300, c.vocab_size = 1000, c.max_position_embeddings = 256;
  c.tie_word_embeddings = true;
  c.torch_dtype = DType::F32;
  PlanRequest r;
  r.model = c;
  r.device = *known_gpu("l4");
  r.weights = WeightChoice::INT4;
  const Plan p = make_plan(r);
  // [out, in] -> out * ceil(in / 2) + out * ceil(in / 128) * 5.
  const auto q4 = [](int64_t out, int64_t in) {
    return out * ((in + 1) / 2) + out * ((in + 127) / 128) * 5;
  };
  const int64_t proj = q4(200, 200) + 2 * q4(100, 200) + q4(200, 200) + 2 * q4(300, 200) +
                       q4(200, 300);
  EXPECT_EQ(p.ranks.at(0).weights.layers, proj + 2 * 200 * 4 + 200 * 4);
  EXPECT_EQ(p.ranks[0].weights.embeddings, 1000 * 200 * 2);  // F32 stored, bf16 on an L4
  EXPECT_EQ(p.ranks[0].weights.lm_head, 0);                  // tied: one table
}

TEST(MemoryPlan, AutoWeightsPicksLeastLossyThatFits) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.weights_auto = true;
  Plan p = make_plan(r);  // fp16 does not fit; int8 holds 5339 blocks >= 2048
  EXPECT_EQ(p.weights, WeightChoice::INT8);
  EXPECT_TRUE(p.fits);
  ASSERT_FALSE(p.notes.empty());
  EXPECT_NE(p.notes.back().find("chose int8"), std::string::npos) << p.notes.back();
  r.device = *known_gpu("a100-40g");
  p = make_plan(r);  // 40 GiB hold the 7B as stored (bf16)
  EXPECT_EQ(p.weights, WeightChoice::BF16);
  r.device = *known_gpu("t4");
  r.max_model_len = 32768;
  r.max_num_batched_tokens = 8192;  // a bigger workspace: int8 still fits?
  const int64_t ws = 2 * 8192 * H * 4 + 3 * 8192 * H * 2 + 2 * 8192 * 512 * 2 + 3 * 8192 * I * 2 +
                     64 * H * 2 + 64 * V * 4;
  const int64_t int8_weights =
      2 * V * H * 2 + L * (kProjParams + kProjRows * 4 + kNormsBiases) + H * 4;
  const bool int8_fits =
      (kT4Usable - int8_weights - ws - kReserveTp1 - kDequantScratch) / (16 * 57344) >= 2048;
  EXPECT_EQ(make_plan(r).weights, int8_fits ? WeightChoice::INT8 : WeightChoice::INT4);
}

TEST(MemoryPlan, AutoContextIsTheLongestThatFits) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.device = PlanDevice{"11 GiB", 11 * 1024 * MiB, true, true};
  r.weights = WeightChoice::INT8;
  r.max_model_len_auto = true;
  const Plan p = make_plan(r);
  const int64_t usable = 10630044057;  // floor(11 GiB * 0.9)
  const int64_t weights = 2 * V * H * 2 + L * (kProjParams + kProjRows * 4 + kNormsBiases) + H * 4;
  const int64_t ws_bf16 = kWorkspace;  // bf16 and fp16 are both 2 bytes
  const int64_t blocks =
      (usable - weights - ws_bf16 - kReserveTp1 - kDequantScratch) / (16 * 57344);
  EXPECT_EQ(p.kv_blocks, blocks);
  EXPECT_EQ(p.max_model_len, blocks * 16);
  EXPECT_LT(p.max_model_len, 32768);
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(p.max_concurrent_at_max_len, 1);
  // The same request at the model's max context does not fit and offers the shorter one.
  r.max_model_len_auto = false;
  const Plan q = make_plan(r);
  EXPECT_FALSE(q.fits);
  bool shorter = false;
  for (const PlanOption& o : q.options)
    shorter |= o.change == "--max-model-len " + std::to_string(blocks * 16);
  EXPECT_TRUE(shorter);
}

TEST(MemoryPlan, CpuPlansTheHostInF32) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r;
  r.model = load_model_config(testdata_dir() + "/configs/stories110m-shape.json");
  r.device = PlanDevice{"cpu", 8192 * MiB, false, true};
  r.tp = 2;
  const Plan p = make_plan(r);
  EXPECT_EQ(p.compute, DType::F32);
  EXPECT_EQ(p.kv, KvDtype::FP32);
  EXPECT_EQ(p.weights, WeightChoice::BF16);  // read in place, as stored
  EXPECT_EQ(p.ranks[0].total, 4096 * MiB);   // the ranks share the host
  EXPECT_EQ(p.ranks[0].reserve.cuda_context, 0);
  EXPECT_EQ(p.kv_bytes_per_token, 2 * 12 * 6 * 64 * 4);
}

TEST(MemoryPlan, BadRequestsAreUserErrors) {
  TESSERA_REQUIRE_TESTDATA();
  PlanRequest r = on_t4(qwen7b());
  r.gpu_memory_utilization = 1.5;
  EXPECT_THROW(make_plan(r), UserError);
  r.gpu_memory_utilization = 0;
  EXPECT_THROW(make_plan(r), UserError);
  r.gpu_memory_utilization = 0.9;
  r.max_model_len = 40000;  // > max_position_embeddings
  EXPECT_THROW(make_plan(r), UserError);
}

// The loader's cache dtype (backend_kv_dtype) and the plan agree: bf16 on a T4 runs as fp16
// (a note says so); a dtype the backend's kernels do not read is a UserError naming the fix.
TEST(MemoryPlan, LoaderKvDtypeMatchesThePlan) {
  std::string note;
  EXPECT_EQ(backend_kv_dtype("auto", false, DType::F32, false, &note), DType::F32);
  EXPECT_EQ(backend_kv_dtype("int8", false, DType::F32, false, &note), DType::I8);
  EXPECT_EQ(backend_kv_dtype("fp32", false, DType::F32, false, &note), DType::F32);
  EXPECT_EQ(backend_kv_dtype("auto", true, DType::BF16, true, &note), DType::BF16);
  EXPECT_EQ(backend_kv_dtype("int8", true, DType::F16, false, &note), DType::I8);
  EXPECT_EQ(note, "");
  // A T4: bf16 checkpoints compute in fp16 there, and a bf16 cache becomes fp16 too.
  EXPECT_EQ(backend_kv_dtype("bf16", true, DType::F16, false, &note), DType::F16);
  EXPECT_NE(note.find("runs as fp16"), std::string::npos) << note;
  PlanRequest r = on_t4(qwen7b());
  r.weights = WeightChoice::INT4;
  r.kv = KvDtype::BF16;
  EXPECT_EQ(make_plan(r).kv, KvDtype::FP16);
  // Refused, with the way out: the CPU's half caches; a cache unlike a GPU's compute dtype.
  const auto refused = [](const std::string& flag, bool cuda, DType compute, bool bf16,
                          const std::string& says) {
    try {
      backend_kv_dtype(flag, cuda, compute, bf16, nullptr);
      ADD_FAILURE() << flag << " was accepted";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused("fp16", false, DType::F32, false, "on the CPU: use fp32 (auto) or int8");
  refused("bf16", false, DType::F32, false, "on the CPU");
  refused("bf16", true, DType::F16, true, "use fp16 (auto) or int8, or --dtype");  // A100
  refused("fp32", true, DType::BF16, true, "use bf16 (auto) or int8");
  refused("q4", true, DType::BF16, true, "expected auto, fp32, fp16, bf16 or int8");
}

}  // namespace
}  // namespace tessera::test
