// Weight-only quantization of linear weights at load, round to nearest (RTN), with the
// formulas of ../shared/testdata/perplexity/TinyStories-656K.ppl.json (round() is
// round-half-to-even, like numpy's):
//   int8: per output row, symmetric: s = max|w| / 127, q = clamp(round(w / s), -127, 127),
//         w' = q * s.
//   int4: per output row, groups of 128 inputs, asymmetric: s = (max - min) / 15 (1 if 0),
//         z = round(-min / s), q = clamp(round(w / s) + z, 0, 15), w' = (q - z) * s.
// The storage layout is WeightFormat's (runtime/backend.h). Choices the formulas leave open:
// - an all-zero int8 row gets s = 1 (every q is 0, so w' = 0 as with any s);
// - int4 groups start at the first input of the tensor given (a rank's own slice under tensor
//   parallel, so no group straddles a shard boundary); when in is not a multiple of 128 the
//   last group of each row is shorter. Groups equal the unsharded model's whenever the slice
//   starts at a multiple of 128 (every real 7B-class model at tp 1 and 2);
// - z is stored in a signed byte (negative when a group's values are all positive). A group
//   whose z leaves [-128, 127] (values of one sign, far from zero compared with their
//   spread, e.g. all in [0.95, 1.0]; not seen in trained weights) widens its range to
//   include 0 (GPTQ's rule), which puts z in [0, 15], instead of failing the load.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/quant_matmul.h"
#include "runtime/backend.h"

namespace tessera {

constexpr int64_t kInt4GroupSize = 128;

// "stored" | "int8" | "int4" (the --weights values); UserError otherwise.
WeightFormat parse_weight_format(const std::string& s);
const char* weight_format_name(WeightFormat f);

// Round half to even (numpy's round).
float round_half_even(float x);

// Quantizes a host F32/F16/BF16 weight [out, in] into a host LinearWeight of `format` (no
// bias, partial_sum false). Dense returns w unchanged. Int4 needs an even `in` (UserError
// naming `what` otherwise).
LinearWeight quantize_weight(const Tensor& w, WeightFormat format,
                             const std::string& what = "weight",
                             int64_t group_size = kInt4GroupSize);

// w' of a host LinearWeight as F32 [out * in], row-major (every format).
std::vector<float> dequantize_weight(const LinearWeight& w);

// The kernels' view of a quantized LinearWeight (pointers on w's device).
QuantMatrix quant_matrix(const LinearWeight& w);

// Bytes a LinearWeight holds: weight, scales, zeros, bias and input_perm.
uint64_t linear_weight_bytes(const LinearWeight& w);

}  // namespace tessera
