// 4-bit checkpoints quantized by other tools (config.json "quantization_config"), repacked at
// load into tessera's int4 LinearWeight (WeightFormat::Int4, runtime/backend.h). The values
// are kept exactly: w'[o, i] = (q - z) * s with the checkpoint's codes, zero points and
// (fp16 -> F32, exact) scales. Formats, int32 words little-endian, nibble j = bits 4j..4j+3:
//
// AutoAWQ, version "gemm" (AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.from_linear;
// the order is awq/utils/packing_utils.py AWQ_ORDER):
//   qweight I32 [in, out / 8]: word (i, c) holds outputs 8c .. 8c + 7 of input i, output
//           8c + kAwqOrder[j] in nibble j, kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7}
//   qzeros  I32 [in / g, out / 8]: packed the same way; z as stored
//   scales  F16 [in / g, out];   input i is in group i / g
// GPTQ (AutoGPTQ / GPTQModel QuantLinear.pack; "checkpoint_format" gptq = v1, gptq_v2):
//   qweight I32 [in / 8, out]: word (r, o) holds inputs 8r .. 8r + 7 of output o, input
//           8r + j in nibble j
//   qzeros  I32 [groups, out / 8]: output 8c + j in nibble j; v1 stores z - 1 (z = nibble + 1)
//   scales  F16 [groups, out]
//   g_idx   I32 [in]: the group of each input; i / g, or any order with act-order (desc_act)
//
// tessera's int4 groups are runs of consecutive inputs, so inputs whose groups are not in
// order (act-order) are reordered: LinearWeight::input_perm says which x column each packed
// input multiplies. Under tensor parallel a rank's slice of a row-split layer may hold only
// part of a group; such runs are padded to whole groups (-1 in input_perm, x = 0 there).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/world.h"
#include "runtime/backend.h"
#include "runtime/model_config.h"

namespace tessera {

class TensorSource;

// AutoAWQ's nibble order: nibble j of a word holds output 8c + kAwqOrder[j].
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// One layer's (or one rank's slice's) unpacked contents, in the checkpoint's layout.
struct Int4Codes {
  int64_t out = 0, in = 0;
  std::vector<uint8_t> q;          // [out, in] codes 0..15
  int64_t groups = 0;              // rows of scales / zeros
  std::vector<float> scales;       // [groups, out]
  std::vector<int8_t> zeros;       // [groups, out], z in 0..16
  std::vector<int32_t> group_of;   // [in]: the scales / zeros row of each input
};

// AWQ tensors of `in` consecutive inputs starting at input `first_input` of the full layer:
// qweight [in, out / 8], and the qzeros / scales rows of groups first_input / g onwards.
Int4Codes unpack_awq(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                     int64_t group_size, int64_t first_input);
// GPTQ tensors: qweight [in / 8, out], qzeros [groups, out / 8], scales [groups, out], g_idx
// [in] (I32; every value in [0, groups)). zeros_minus_one: v1 checkpoints.
Int4Codes unpack_gptq(const Tensor& qweight, const Tensor& qzeros, const Tensor& scales,
                      const Tensor& g_idx, bool zeros_minus_one, const std::string& what);

// tessera's int4 LinearWeight (host) with `group_size` inputs per scale (even; runs of one
// checkpoint group longer than that are split). input_perm is set only when needed.
LinearWeight int4_weight_from_codes(const Int4Codes& c, int64_t group_size);

// w' [out, in] in the layer's own input order (padding dropped): the inverse of the
// reordering, for checks.
std::vector<float> dequantize_in_input_order(const LinearWeight& w, int64_t in);

// This rank's share of the 4-bit layer `prefix` ("model.layers.0.mlp.down_proj"), full shape
// [out_features, in_features], split by the layer's shard rule, as a host LinearWeight (no
// bias). UserError naming the tensor on missing tensors, wrong shapes or dtypes, bad g_idx,
// or a split the packing cannot follow (8 outputs per word).
LinearWeight load_prequantized_linear(TensorSource& src, const std::string& prefix,
                                      int64_t out_features, int64_t in_features,
                                      const ModelConfig& cfg, const World& world);

}  // namespace tessera
