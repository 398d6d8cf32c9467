// ModelConfig: the architecture of a Hugging Face decoder checkpoint (config.json), for
// model_type llama, mistral and qwen2. Architecture differences are flags, not model copies.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dtype.h"

namespace tessera {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 } type = Type::None;
  float factor = 1.0f;
  // llama3 only
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position = 8192;
};

// A checkpoint whose linear layers are already 4-bit (config.json "quantization_config"):
// q/k/v/o/gate/up/down come as qweight/qzeros/scales (+ g_idx) int32-packed tensors that the
// loader repacks into tessera's int4 layout (runtime/prequantized.h).
struct PrequantConfig {
  enum class Method { None, Awq, Gptq } method = Method::None;
  int64_t group_size = 0;     // inputs per scale/zero; 0: one group per row (GPTQ's -1)
  bool desc_act = false;      // GPTQ act-order: g_idx, not i / group_size, names the group
  bool zeros_minus_one = false;  // GPTQ v1 ("checkpoint_format" gptq): qzeros hold z - 1
  // Modules left unquantized (stored as dense .weight): a module is skipped when one of these
  // is a substring of its name, e.g. "model.layers.0.mlp.down_proj" (AutoAWQ, transformers
  // and vLLM match this way).
  std::vector<std::string> modules_to_not_convert;
  // GPTQModel's quantization_config.dynamic exclusions ("-:" keys): regular expressions that
  // skip a module when they match at the start of its name (Python's re.match).
  std::vector<std::string> excluded_patterns;
  bool active() const { return method != Method::None; }
  bool skips(const std::string& module) const;
  const char* name() const { return method == Method::Awq ? "AWQ" : "GPTQ"; }
};

struct ModelConfig {
  std::string model_type;        // "llama" | "mistral" | "qwen2"
  int64_t hidden_size = 0;       // d_model
  int64_t num_layers = 0;
  int64_t num_heads = 0;         // query heads
  int64_t num_kv_heads = 0;      // key/value heads (GQA when < num_heads)
  int64_t head_dim = 0;          // hidden_size / num_heads unless config.json says otherwise
  int64_t intermediate_size = 0; // MLP inner width
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v projections have a bias (qwen2; llama attention_bias)
  bool mlp_bias = false;
  int64_t sliding_window = 0;    // 0: full attention; else attend to the last W positions
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  DType torch_dtype = DType::F32;
  PrequantConfig prequant;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  bool is_eos(int64_t id) const;
};

// Parses a config.json text; `source` names the file in error messages.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
// Reads DIR/config.json (or a config file path). Throws UserError naming the file.
ModelConfig load_model_config(const std::string& path);

// --embeddings host: a tied model's lm_head is its embedding table, which the logits would
// then read whole from host memory every step; UserError unless lm_head is int8 (a copy on
// the device).
void check_host_embeddings(const ModelConfig& cfg, bool lm_head_int8);

}  // namespace tessera
