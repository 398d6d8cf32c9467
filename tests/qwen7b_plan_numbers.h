// Qwen2.5-7B's memory-plan numbers, computed by hand from the formulas in
// runtime/memory_plan.h (never from tessera's output), shared by the plan tests.
// memory_plan_test.cpp checks that the config file says this shape.
#pragma once
#include <cstdint>

#include "runtime/memory_plan.h"
#include "tests/test_util.h"

namespace tessera::test::qwen7b {

constexpr int64_t MiB = int64_t(1) << 20;

// Qwen2.5-7B-Instruct's shape, written out.
constexpr int64_t L = 28, H = 3584, NH = 28, KVH = 4, D = 128, V = 152064, I = 18944;
// Per layer, every *_proj weight: q [H, H], k and v [512, H], o [H, H], gate/up [I, H],
// down [H, I].
constexpr int64_t kProjParams = H * H + 2 * (KVH * D) * H + H * H + 2 * I * H + H * I;
constexpr int64_t kProjRows = H + 2 * KVH * D + H + 2 * I + H;  // output rows of those
constexpr int64_t kNormsBiases = 2 * H * 4 + (H + 2 * KVH * D) * 4;  // F32 norms, q/k/v bias
constexpr int64_t kT4Usable = 14495514624;     // floor(15360 MiB * 0.9)
constexpr int64_t kReserveTp1 = (400 + 32 + 64) * MiB;  // context + cuBLAS + graphs
// Quantized weights on a GPU add the prefill dequantization scratch of the layer needing the
// most: gate/up [I, H] in fp16, rows fitting 32 MiB = 33554432 / (3584 * 2) = 4681, rounded
// down to a multiple of 64 = 4672 rows of H fp16 values (down_proj: 832 rows of I, less).
// An int8 lm_head [V, H] needs as much as gate/up.
constexpr int64_t kDequantScratch = 4672 * 3584 * 2;
// Workspace for 2048 tokens, 64 logit rows, fp16: residual and proj (o/down output) F32,
// normed, q, attn, k, v, gate, up, act, last hidden, F32 logits.
constexpr int64_t kWorkspace = 2 * 2048 * H * 4 + 2048 * H * 2 + 2 * 2048 * H * 2 +
                               2 * 2048 * 512 * 2 + 3 * 2048 * I * 2 + 64 * H * 2 + 64 * V * 4;
constexpr int64_t kTable16 = V * H * 2;         // the embedding table (or lm_head) in 16 bits
constexpr int64_t kInt8LmHead = V * H + V * 4;  // int8 codes + an F32 scale per row
// One int4 g128 layer: packed nibbles, per (row, group) an F32 scale and an I8 zero.
constexpr int64_t kInt4Layer = kProjParams / 2 + kProjParams / 128 * 5 + kNormsBiases;
constexpr int64_t kKvBlock16 = 16 * 57344;      // 16 tokens x 2 x 28 x 4 x 128 x 2 bytes

// A plan request for the config file of this shape on `d` (other fields: the defaults).
inline PlanRequest qwen7b_on(PlanDevice d) {
  PlanRequest r;
  r.model = load_model_config(testdata_dir() + "/configs/qwen2.5-7b-instruct.json");
  r.device = d;
  return r;
}

}  // namespace tessera::test::qwen7b
