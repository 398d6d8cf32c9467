#include "runtime/model_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "runtime/error.h"

namespace tessera {
namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  const std::string& src;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t integer(const char* key, int64_t def, bool required = false) const {
    if (!has(key)) {
      require(!required, src + ": missing required field \"" + key + "\"");
      return def;
    }
    require(j[key].is_number_integer(), src + ": field \"" + key + "\" must be an integer");
    return j[key].get<int64_t>();
  }
  double number(const char* key, double def) const {
    if (!has(key)) return def;
    require(j[key].is_number(), src + ": field \"" + key + "\" must be a number");
    return j[key].get<double>();
  }
  bool boolean(const char* key, bool def) const {
    if (!has(key)) return def;
    require(j[key].is_boolean(), src + ": field \"" + key + "\" must be true or false");
    return j[key].get<bool>();
  }
};

RopeScaling parse_rope_scaling(const json& r, const std::string& src) {
  RopeScaling s;
  if (r.is_null()) return s;
  require(r.is_object(), src + ": rope_scaling must be an object or null");
  std::string type;
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"];
  else if (r.contains("type") && r["type"].is_string()) type = r["type"];
  Reader rd{r, src};
  if (type == "default") return s;
  if (type == "linear") {
    s.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    s.type = RopeScaling::Type::Llama3;
    s.low_freq_factor = float(rd.number("low_freq_factor", 1.0));
    s.high_freq_factor = float(rd.number("high_freq_factor", 4.0));
    s.original_max_position = rd.integer("original_max_position_embeddings", 8192);
    require(s.high_freq_factor > s.low_freq_factor,
            src + ": rope_scaling high_freq_factor must exceed low_freq_factor");
  } else {
    throw UserError(src + ": unsupported rope_scaling type \"" + type +
                    "\" (supported: linear, llama3)");
  }
  s.factor = float(rd.number("factor", 1.0));
  require(s.factor > 0, src + ": rope_scaling factor must be positive");
  return s;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Whether `pattern` (ECMAScript syntax, which covers the module patterns GPTQModel writes)
// matches at the start of `name`, as Python's re.match. Compiled once per pattern and thread:
// the plan and the loader ask for every layer.
bool matches_at_start(const std::string& pattern, const std::string& name) {
  thread_local std::map<std::string, std::regex> compiled;
  auto it = compiled.find(pattern);
  if (it == compiled.end()) it = compiled.emplace(pattern, std::regex(pattern)).first;
  return std::regex_search(name, it->second, std::regex_constants::match_continuous);
}

// GPTQModel's per-module rules: {"-:REGEX": {}} leaves matching modules unquantized (read);
// other keys ("+:REGEX" or "REGEX") override bits / group size / ... for matching modules:
// not supported (one int4 layout per checkpoint), and a rule listed before an exclusion can
// shadow it (the first match wins), so any of them is an error rather than a guess.
void parse_dynamic_rules(const json& d, const std::string& where, PrequantConfig& p) {
  require(d.is_object(), where + ".dynamic must be an object of module patterns");
  for (const auto& item : d.items()) {
    const std::string& key = item.key();
    require(key.rfind("-:", 0) == 0,
            where + ".dynamic: \"" + key + "\" overrides the quantization of some modules; "
                    "per-module overrides are not supported (\"-:\" exclusions are)");
    const std::string pattern = key.substr(2);
    try {
      std::regex check(pattern);
    } catch (const std::regex_error&) {
      throw UserError(where + ".dynamic: \"" + key +
                      "\" is not a regular expression tessera reads");
    }
    p.excluded_patterns.push_back(pattern);
  }
}

// quantization_config of AutoAWQ (GEMM) and AutoGPTQ / GPTQModel checkpoints, 4-bit only.
PrequantConfig parse_quantization_config(const json& q, const std::string& src) {
  PrequantConfig p;
  if (q.is_null()) return p;
  require(q.is_object(), src + ": quantization_config must be an object");
  const std::string where = src + ": quantization_config";
  Reader rd{q, where};
  const std::string method =
      q.contains("quant_method") && q["quant_method"].is_string() ? lower(q["quant_method"]) : "";
  require(method == "awq" || method == "gptq",
          src + ": quantization_config.quant_method \"" + method +
              "\" is not supported (supported: awq, gptq; or use an unquantized checkpoint "
              "with --weights int8|int4)");
  p.method = method == "awq" ? PrequantConfig::Method::Awq : PrequantConfig::Method::Gptq;
  const int64_t bits = rd.integer(method == "awq" && !rd.has("bits") ? "w_bit" : "bits", 4);
  require(bits == 4, src + ": quantization_config: " + std::to_string(bits) + "-bit " +
                         p.name() + " is not supported (4-bit only)");
  const int64_t g = rd.integer(method == "awq" && !rd.has("group_size") ? "q_group_size"
                                                                         : "group_size", 128);
  require(g == -1 || (g > 0 && g % 2 == 0),
          src + ": quantization_config.group_size must be -1 or a positive even number, got " +
              std::to_string(g));
  p.group_size = g == -1 ? 0 : g;
  if (p.method == PrequantConfig::Method::Awq) {
    const std::string version =
        q.contains("version") && q["version"].is_string() ? lower(q["version"]) : "gemm";
    require(version == "gemm", src + ": AWQ version \"" + version +
                                   "\" is not supported (supported: gemm, AutoAWQ's default)");
    require(rd.boolean("zero_point", true),
            src + ": AWQ without zero points (zero_point false) is not supported");
    require(g != -1, src + ": AWQ needs a positive group_size");
  } else {
    p.desc_act = rd.boolean("desc_act", false);
    const std::string format = q.contains("checkpoint_format") && q["checkpoint_format"].is_string()
                                   ? lower(q["checkpoint_format"])
                                   : "gptq";
    require(format == "gptq" || format == "gptq_v2",
            src + ": GPTQ checkpoint_format \"" + format +
                "\" is not supported (supported: gptq, gptq_v2)");
    p.zeros_minus_one = format == "gptq";
    if (q.contains("dynamic") && !q["dynamic"].is_null())
      parse_dynamic_rules(q["dynamic"], where, p);
  }
  if (q.contains("modules_to_not_convert") && !q["modules_to_not_convert"].is_null()) {
    const json& m = q["modules_to_not_convert"];
    const std::string bad = where + ".modules_to_not_convert must be a list of module names";
    require(m.is_array(), bad);
    for (const json& e : m) {
      require(e.is_string() && !e.get<std::string>().empty(), bad);
      p.modules_to_not_convert.push_back(e.get<std::string>());
    }
  }
  return p;
}

}  // namespace

bool PrequantConfig::skips(const std::string& module) const {
  return std::any_of(modules_to_not_convert.begin(), modules_to_not_convert.end(),
                     [&](const std::string& m) { return module.find(m) != std::string::npos; }) ||
         std::any_of(excluded_patterns.begin(), excluded_patterns.end(),
                     [&](const std::string& p) { return matches_at_start(p, module); });
}

bool ModelConfig::is_eos(int64_t id) const {
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), id) != eos_token_ids.end();
}

ModelConfig parse_model_config(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw UserError(src + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  require(j.is_object(), src + ": config must be a JSON object");
  Reader rd{j, src};
  ModelConfig c;
  require(rd.has("model_type") && j["model_type"].is_string(),
          src + ": missing \"model_type\"");
  c.model_type = j["model_type"];
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2")
    throw UserError(src + ": unsupported model_type \"" + c.model_type +
                    "\" (supported: llama, mistral, qwen2)");
  c.hidden_size = rd.integer("hidden_size", 0, true);
  c.num_layers = rd.integer("num_hidden_layers", 0, true);
  c.num_heads = rd.integer("num_attention_heads", 0, true);
  c.num_kv_heads = rd.integer("num_key_value_heads", c.num_heads);
  c.intermediate_size = rd.integer("intermediate_size", 0, true);
  c.vocab_size = rd.integer("vocab_size", 0, true);
  c.max_position_embeddings = rd.integer("max_position_embeddings", 2048);
  require(c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0 &&
              c.intermediate_size > 0 && c.vocab_size > 0 && c.max_position_embeddings > 0,
          src + ": sizes must be positive");
  require(c.num_heads % c.num_kv_heads == 0,
          src + ": num_attention_heads (" + std::to_string(c.num_heads) +
              ") must be a multiple of num_key_value_heads (" +
              std::to_string(c.num_kv_heads) + ")");
  if (rd.has("head_dim")) {
    c.head_dim = rd.integer("head_dim", 0);
  } else {
    require(c.hidden_size % c.num_heads == 0,
            src + ": hidden_size must be a multiple of num_attention_heads");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  require(c.head_dim > 0 && c.head_dim % 2 == 0, src + ": head_dim must be positive and even");
  c.rms_norm_eps = float(rd.number("rms_norm_eps", 1e-6));
  c.rope_theta = float(rd.number("rope_theta", 10000.0));
  if (j.contains("rope_scaling")) c.rope_scaling = parse_rope_scaling(j["rope_scaling"], src);
  c.tie_word_embeddings = rd.boolean("tie_word_embeddings", false);
  c.attention_bias = c.model_type == "qwen2" ? true : rd.boolean("attention_bias", false);
  c.mlp_bias = rd.boolean("mlp_bias", false);
  if (rd.has("hidden_act")) {
    require(j["hidden_act"] == "silu", src + ": unsupported hidden_act " +
                                           j["hidden_act"].dump() + " (supported: silu)");
  }
  // Mistral: sliding_window applies. Qwen2: only when use_sliding_window is true.
  bool use_window = c.model_type == "mistral" || rd.boolean("use_sliding_window", false);
  if (use_window && rd.has("sliding_window")) {
    c.sliding_window = rd.integer("sliding_window", 0);
    require(c.sliding_window >= 0, src + ": sliding_window must be non-negative");
  }
  c.bos_token_id = rd.integer("bos_token_id", -1);
  if (rd.has("eos_token_id")) {
    const json& e = j["eos_token_id"];
    if (e.is_array()) {
      for (const auto& v : e) {
        require(v.is_number_integer(), src + ": eos_token_id entries must be integers");
        c.eos_token_ids.push_back(v.get<int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(rd.integer("eos_token_id", -1));
    }
  }
  if (rd.has("torch_dtype") && j["torch_dtype"].is_string()) {
    std::string d = j["torch_dtype"];
    c.torch_dtype = d == "bfloat16" ? DType::BF16 : d == "float16" ? DType::F16 : DType::F32;
  }
  if (j.contains("quantization_config"))
    c.prequant = parse_quantization_config(j["quantization_config"], src);
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (fs::is_directory(p)) p /= "config.json";
  else
    require(fs::exists(p), "model directory or config not found: " + path);
  std::ifstream f(p);
  require(bool(f), "cannot read " + p.string() + " (missing config.json?)");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_model_config(ss.str(), p.string());
}

void check_host_embeddings(const ModelConfig& cfg, bool lm_head_int8) {
  require(!cfg.tie_word_embeddings || lm_head_int8,
          "--embeddings host: this model ties lm_head to the embedding table, which would then "
          "be read whole from host memory every step; add --lm-head int8 (an int8 copy on the "
          "device computes the logits)");
}

}  // namespace tessera
