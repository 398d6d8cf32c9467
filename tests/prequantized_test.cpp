// AWQ / GPTQ 4-bit layers -> tessera int4 (runtime/prequantized.h): words written out by
// hand, pack -> load -> dequantize round trips, act-order, and tensor-parallel slices.
#include "runtime/prequantized.h"

#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "runtime/quant.h"
#include "tests/prequant_pack.h"

namespace tessera {
namespace {

using test::KnownInt4;
using test::MapSource;

Tensor words(std::vector<uint32_t> w, int64_t rows, int64_t cols) {
  return test::i32_tensor(w, {rows, cols});
}

// AutoAWQ GEMM, 8 outputs x 4 inputs, group 2. Source of the packing: AutoAWQ
// awq/modules/linear/gemm.py, WQLinear_GEMM.from_linear: for each 8-column block, nibble j
// (bits 4j..4j+3) of the int32 word receives column order_map[j], order_map =
// [0, 2, 4, 6, 1, 3, 5, 7]; qzeros are packed with the same loop (awq/utils/packing_utils.py
// AWQ_ORDER / AWQ_REVERSE_ORDER say the same). Words below are written from that rule.
TEST(PrequantizedFixture, AwqWordsWrittenByHand) {
  // Codes q[input i][output k]:
  //   i = 0: k        -> nibbles j = 0..7 hold k = 0,2,4,6,1,3,5,7     -> 0x75316420
  //   i = 1: 15 - k   -> nibbles hold 15,13,11,9,14,12,10,8            -> 0x8ACE9BDF
  //   i = 2: 3        ->                                               -> 0x33333333
  //   i = 3: 2k       -> nibbles hold 0,4,8,12,2,6,10,14               -> 0xEA62C840
  const Tensor qweight = words({0x75316420u, 0x8ACE9BDFu, 0x33333333u, 0xEA62C840u}, 4, 1);
  // Zeros: group 0 (inputs 0, 1) all 8; group 1 (inputs 2, 3) z = k -> 0x75316420.
  const Tensor qzeros = words({0x88888888u, 0x75316420u}, 2, 1);
  std::vector<float> s(16);
  for (int k = 0; k < 8; ++k) s[size_t(k)] = 0.5f, s[size_t(8 + k)] = 0.25f * float(k + 1);
  const Tensor scales = test::f16_tensor(s, 2, 8);

  const LinearWeight w = int4_weight_from_codes(unpack_awq(qweight, qzeros, scales, 2, 0), 2);
  ASSERT_EQ(w.out_features(), 8);
  ASSERT_EQ(w.in_features(), 4);
  EXPECT_TRUE(w.input_perm.empty());
  const std::vector<float> got = dequantize_in_input_order(w, 4);
  for (int k = 0; k < 8; ++k) {
    const float s1 = 0.25f * float(k + 1);
    const float want[4] = {float(k - 8) * 0.5f, float(15 - k - 8) * 0.5f, float(3 - k) * s1,
                           float(2 * k - k) * s1};
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got[size_t(k * 4 + i)], want[i]) << k << "," << i;
  }
}

// GPTQ, "checkpoint_format": "gptq" (v1), 8 outputs x 8 inputs, group 4. Source of the
// packing: AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py QuantLinear.pack:
// qweight row r, word of output o, gets input 8r + j shifted by 4j; qzeros column c gets
// output 8c + j shifted by 4j after `zeros -= 1`; the forward pass adds the 1 back
// (zeros + 1) and dequantizes scales[g_idx] * (weight - zeros[g_idx]).
TEST(PrequantizedFixture, GptqV1WordsWrittenByHand) {
  // Codes q[output o][input i]:
  //   o = 0: i      -> 0x76543210;  o = 1: 15 - i -> 0x89ABCDEF;  o = 2..7: 1 -> 0x11111111
  const Tensor qweight = words({0x76543210u, 0x89ABCDEFu, 0x11111111u, 0x11111111u,
                                0x11111111u, 0x11111111u, 0x11111111u, 0x11111111u},
                               1, 8);
  // Stored z - 1: group 0 all 7 (z = 8, symmetric); group 1 output j stores j (z = j + 1).
  const Tensor qzeros = words({0x77777777u, 0x76543210u}, 2, 1);
  std::vector<float> s(16, 1.0f);
  for (int o = 0; o < 8; ++o) s[size_t(8 + o)] = 0.5f;
  const Tensor scales = test::f16_tensor(s, 2, 8);
  for (const bool act_order : {false, true}) {
    const std::vector<int32_t> gi = act_order ? std::vector<int32_t>{1, 0, 1, 0, 0, 1, 1, 0}
                                              : std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1};
    const LinearWeight w = int4_weight_from_codes(
        unpack_gptq(qweight, qzeros, scales, test::i32_tensor(gi), true, "fixture"), 4);
    EXPECT_EQ(w.input_perm.empty(), !act_order);
    EXPECT_EQ(w.in_features(), 8);  // act-order at tp 1: reordered, never padded
    const std::vector<float> got = dequantize_in_input_order(w, 8);
    for (int o = 0; o < 8; ++o)
      for (int i = 0; i < 8; ++i) {
        const int q = o == 0 ? i : o == 1 ? 15 - i : 1;
        const int z = gi[size_t(i)] == 0 ? 8 : o + 1;
        const float sc = gi[size_t(i)] == 0 ? 1.0f : 0.5f;
        EXPECT_EQ(got[size_t(o * 8 + i)], float(q - z) * sc) << o << "," << i << " " << act_order;
      }
  }
}

std::vector<float> slice(const std::vector<float>& w, int64_t in, int64_t o0, int64_t o1,
                         int64_t i0, int64_t i1) {
  std::vector<float> r;
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t i = i0; i < i1; ++i) r.push_back(w[size_t(o * in + i)]);
  return r;
}

ModelConfig tiny_config(PrequantConfig::Method m, int64_t group, bool desc_act, bool v1) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 128, c.num_layers = 1, c.num_heads = 8, c.num_kv_heads = 4, c.head_dim = 16;
  c.intermediate_size = 384, c.vocab_size = 64, c.max_position_embeddings = 64;
  c.prequant.method = m;
  c.prequant.group_size = group;
  c.prequant.desc_act = desc_act;
  c.prequant.zeros_minus_one = v1;
  return c;
}

struct Case {
  const char* format;  // "awq" | "gptq" | "gptq_v2"
  int64_t group;
  bool act_order;
};

// Pack -> load (every rank of tp 1, 2, 4) -> dequantize gives the known values exactly, for
// a column-split (gate_proj [384, 128]) and a row-split (down_proj [128, 384]) layer. At tp 2
// down_proj's 192 inputs per rank cut a 128-group in two: the rank pads it.
TEST(Prequantized, PackLoadDequantizeIsExactOnEveryRank) {
  const Case cases[] = {{"awq", 128, false}, {"awq", 64, false}, {"gptq", 128, false},
                        {"gptq", 32, true},  {"gptq_v2", 128, true}, {"gptq", -1, false}};
  for (const Case& cs : cases) {
    const bool awq = std::string(cs.format) == "awq", v1 = std::string(cs.format) == "gptq";
    const ModelConfig cfg =
        tiny_config(awq ? PrequantConfig::Method::Awq : PrequantConfig::Method::Gptq,
                    cs.group > 0 ? cs.group : 0, cs.act_order, v1);
    for (const bool row : {false, true}) {
      const std::string prefix = row ? "model.layers.0.mlp.down_proj" : "model.layers.0.mlp.gate_proj";
      const int64_t out = row ? 128 : 384, in = row ? 384 : 128;
      const int64_t g = cs.group > 0 ? cs.group : in;
      const KnownInt4 k = test::random_known(out, in, g, 7 + uint64_t(g), cs.act_order, v1 ? 1 : 0);
      MapSource src;
      src.tensors = test::packed_layer(prefix, k, cs.format);
      const std::vector<float> full = k.dequantized();
      for (const int tp : {1, 2, 4}) {
        for (int rank = 0; rank < tp; ++rank) {
          SCOPED_TRACE(std::string(cs.format) + " group " + std::to_string(cs.group) +
                       (row ? " row" : " column") + " tp " + std::to_string(tp) + " rank " +
                       std::to_string(rank));
          const LinearWeight w =
              load_prequantized_linear(src, prefix, out, in, cfg, World{rank, tp, rank});
          const int64_t o0 = row ? 0 : rank * out / tp, o1 = row ? out : (rank + 1) * out / tp;
          const int64_t i0 = row ? rank * in / tp : 0, i1 = row ? (rank + 1) * in / tp : in;
          ASSERT_EQ(w.out_features(), o1 - o0);
          EXPECT_EQ(dequantize_in_input_order(w, i1 - i0), slice(full, in, o0, o1, i0, i1));
          // Padding only where a rank holds part of a group.
          const bool partial = cs.act_order ? (row && tp > 1) : (row && i0 % g != 0);
          if (!partial) {
            EXPECT_EQ(w.in_features(), i1 - i0);
          }
          if (!cs.act_order && !partial) {
            EXPECT_TRUE(w.input_perm.empty());
          }
        }
      }
    }
  }
}

// The CPU backend multiplies a reordered, padded weight like the dense one once x is
// gathered (what Model::project does): y = gather(x) @ W'^T.
TEST(Prequantized, GatheredMatmulMatchesDenseWeights) {
  const ModelConfig cfg = tiny_config(PrequantConfig::Method::Gptq, 32, true, true);
  const KnownInt4 k = test::random_known(128, 384, 32, 3, true, 1);
  MapSource src;
  src.tensors = test::packed_layer("model.layers.0.mlp.down_proj", k, "gptq");
  const LinearWeight w = load_prequantized_linear(src, "model.layers.0.mlp.down_proj", 128, 384,
                                                  cfg, World{1, 2, 1});
  ASSERT_FALSE(w.input_perm.empty());
  ASSERT_GT(w.in_features(), 192);  // padded groups
  auto backend = make_cpu_backend(1);
  const int64_t M = 12, in = 192;
  Tensor x = host_tensor(DType::F32, {M, in});
  for (int64_t i = 0; i < M * in; ++i) x.ptr<float>()[i] = std::sin(0.37f * float(i));
  Tensor xp = host_tensor(DType::F32, {M, w.in_features()});
  backend->gather_columns(x, w.input_perm, xp);
  Tensor y = host_tensor(DType::F32, {M, 128});
  backend->linear(xp, backend->upload_linear(w), y);
  const std::vector<float> dense = slice(k.dequantized(), 384, 0, 128, 192, 384);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < 128; ++o) {
      double ref = 0;
      for (int64_t i = 0; i < in; ++i)
        ref += double(dense[size_t(o * in + i)]) * double(x.ptr<float>()[m * in + i]);
      EXPECT_NEAR(y.ptr<float>()[m * 128 + o], ref, 1e-4 * (1 + std::fabs(ref)));
    }
}

TEST(Prequantized, BadTensorsAreClearErrors) {
  const ModelConfig cfg = tiny_config(PrequantConfig::Method::Gptq, 128, true, true);
  const std::string p = "model.layers.0.mlp.gate_proj";
  const KnownInt4 k = test::random_known(384, 128, 128, 5, true, 1);
  auto load_error = [&](MapSource& src) {
    try {
      load_prequantized_linear(src, p, 384, 128, cfg, World{0, 1, 0});
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  MapSource src;
  src.tensors = test::packed_layer(p, k, "gptq");
  src.tensors.erase(p + ".qzeros");
  EXPECT_NE(load_error(src).find("missing tensor " + p + ".qzeros"), std::string::npos);
  src.tensors = test::packed_layer(p, k, "gptq");
  src.tensors[p + ".scales"].shape = {384, 1, 0, 0};  // the right bytes, transposed shape
  EXPECT_NE(load_error(src).find("has shape [384, 1], expected [1, 384]"), std::string::npos);
  src.tensors = test::packed_layer(p, k, "gptq");
  src.tensors[p + ".g_idx"].ptr<int32_t>()[5] = 3;
  EXPECT_NE(load_error(src).find("g_idx[5] = 3 is outside the 1 groups"), std::string::npos);
  src.tensors = test::packed_layer(p, k, "gptq");
  src.tensors[p + ".qweight"] = test::f16_tensor(std::vector<float>(16 * 384), 16, 384);
  EXPECT_NE(load_error(src).find("qweight must be a 2-D I32 tensor, got F16"), std::string::npos);
  src.tensors = test::packed_layer(p, k, "gptq");
  src.tensors.erase(p + ".g_idx");  // desc_act needs it
  EXPECT_NE(load_error(src).find("missing tensor " + p + ".g_idx"), std::string::npos);
  // kv heads split so that a rank's outputs are not a multiple of 8 words: k_proj [4*2, H]
  ModelConfig odd = cfg;
  odd.head_dim = 4, odd.num_heads = 32, odd.num_kv_heads = 4;
  const KnownInt4 kk = test::random_known(16, 128, 128, 6, false, 1);
  MapSource ks;
  ks.tensors = test::packed_layer("model.layers.0.self_attn.k_proj", kk, "gptq");
  try {
    load_prequantized_linear(ks, "model.layers.0.self_attn.k_proj", 16, 128, odd, World{1, 4, 1});
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("8 outputs per int32 word"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
