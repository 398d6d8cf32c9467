// `tessera quantize`'s output: an AutoAWQ "gemm" checkpoint (layout in runtime/prequantized.h)
// of a Hugging Face model. Every layer's q/k/v/o/gate/up/down weights become int4
// (qweight / qzeros / scales, runtime/awq.h's RTN of the scaled weights); the AWQ scales are
// folded into the op producing each input, so the model computes the same function before
// quantization:
//   q, k, v   columns * s_a    input_layernorm          / s_a
//   o         columns * s_o    v_proj rows (and bias)   / s_o  (s_o tied per kv-head channel)
//   gate, up  columns * s_m    post_attention_layernorm / s_m
//   down      columns * s_d    up_proj rows (and bias)  / s_d
// Everything else is copied as stored; config.json gains a quantization_config. tessera
// (runtime/prequantized_load.cpp) and other AWQ readers load the result.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/awq.h"
#include "runtime/model_config.h"
#include "runtime/safetensors_writer.h"

namespace tessera {

struct AwqOptions {
  int64_t group_size = 128;
  bool search_scales = true;  // false: plain RTN (no calibration needed)
  bool search_clip = true;
  int grid = 20;
};

// What the searches chose for one layer, per LinearInput site.
struct AwqLayerReport {
  int64_t layer = 0;
  double alpha[kNumLinearInputs] = {};
  double loss[kNumLinearInputs] = {};      // summed squared output error on the sample
  double rtn_loss[kNumLinearInputs] = {};  // the same with plain RTN
};

// One decoder layer's tensors that the scales touch, in F32 (biases empty when absent).
struct AwqLayerTensors {
  Matrix q, k, v, o, gate, up, down;  // [out, in] each
  std::vector<float> input_norm, post_attention_norm, v_bias, up_bias;
};

// o_proj's input channel h * head_dim + j is fed by v_proj's output channel
// (h / (heads / kv_heads)) * head_dim + j: the classes of search_scales' channel_tie.
std::vector<int32_t> kv_channel_classes(const ModelConfig& cfg);

// Applies the table above: s[site] per LinearInput; s[kAttentionOut] [q_size] must be equal
// within each kv_channel_classes class. The layer computes the same function afterwards.
void fold_awq_scales(AwqLayerTensors& t, const std::vector<float> (&s)[kNumLinearInputs],
                     const ModelConfig& cfg);

// AutoAWQ WQLinear_GEMM's tensors for codes whose groups are consecutive runs of g inputs:
// prefix.qweight I32 [in, out / 8], prefix.qzeros I32 [in / g, out / 8] (output
// 8c + kAwqOrder[j] in nibble j of word c), prefix.scales F16 [in / g, out].
std::vector<NamedTensor> pack_awq(const Int4Codes& c, const std::string& prefix);

// UserError unless the model's layers can be written in the format with opt's group size
// (inputs a multiple of the group, outputs of 8) and are not quantized already.
void check_awq_quantizable(const ModelConfig& cfg, const AwqOptions& opt);

// Quantizes the checkpoint in model_dir into out_dir (an existing, empty directory):
// model.safetensors, config.json, and the directory's other files (tokenizer, generation
// config) copied. `stats` holds calibration activations of the model as stored (nullptr:
// plain RTN; required when opt searches). on_layer is called after each layer. UserError for
// a model the format cannot hold (an input size not a multiple of the group, an output size
// not a multiple of 8, an already quantized checkpoint).
void write_awq_checkpoint(const std::string& model_dir, const ModelConfig& cfg,
                          const ActivationRecorder* stats, const AwqOptions& opt,
                          const std::string& out_dir,
                          const std::function<void(const AwqLayerReport&)>& on_layer);

}  // namespace tessera
