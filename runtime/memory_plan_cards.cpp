// Names of weight formats and KV dtypes, the cards a plan knows by name, and the host as a
// device for the CPU backend.
#include <algorithm>
#include <fstream>

#include "parallel/shard_rules.h"
#include "runtime/error.h"
#include "runtime/memory_plan.h"

namespace tessera {

constexpr int64_t kMiB = int64_t(1) << 20;

const char* weight_choice_name(WeightChoice f) {
  switch (f) {
    case WeightChoice::FP32: return "fp32";
    case WeightChoice::BF16: return "bf16";
    case WeightChoice::FP16: return "fp16";
    case WeightChoice::INT8: return "int8";
    case WeightChoice::INT4: return "int4";
  }
  return "?";
}

const char* kv_dtype_name(KvDtype k) {
  switch (k) {
    case KvDtype::FP32: return "fp32";
    case KvDtype::FP16: return "fp16";
    case KvDtype::BF16: return "bf16";
    case KvDtype::INT8: return "int8";
  }
  return "?";
}

bool parse_weight_choice(const std::string& s, WeightChoice* out) {
  static const std::pair<const char*, WeightChoice> names[] = {
      {"fp32", WeightChoice::FP32}, {"float32", WeightChoice::FP32},
      {"bf16", WeightChoice::BF16}, {"bfloat16", WeightChoice::BF16},
      {"fp16", WeightChoice::FP16}, {"float16", WeightChoice::FP16},
      {"int8", WeightChoice::INT8}, {"int4", WeightChoice::INT4}};
  for (const auto& [n, f] : names)
    if (s == n) return *out = f, true;
  return false;
}

bool parse_kv_dtype(const std::string& s, KvDtype* out) {
  static const std::pair<const char*, KvDtype> names[] = {
      {"fp32", KvDtype::FP32}, {"float32", KvDtype::FP32}, {"fp16", KvDtype::FP16},
      {"float16", KvDtype::FP16}, {"bf16", KvDtype::BF16}, {"bfloat16", KvDtype::BF16},
      {"int8", KvDtype::INT8}};
  for (const auto& [n, k] : names)
    if (s == n) return *out = k, true;
  return false;
}

KvDtype kv_dtype_of(DType dtype) {
  return dtype == DType::F32 ? KvDtype::FP32 : dtype == DType::BF16 ? KvDtype::BF16
                                                                    : KvDtype::FP16;
}

DType dtype_of(KvDtype k) {
  switch (k) {
    case KvDtype::FP32: return DType::F32;
    case KvDtype::FP16: return DType::F16;
    case KvDtype::BF16: return DType::BF16;
    case KvDtype::INT8: return DType::I8;
  }
  return DType::F32;
}

DType backend_kv_dtype(const std::string& flag, bool cuda, DType compute, bool gpu_bf16,
                       std::string* note) {
  const DType plain = cuda ? compute : DType::F32;
  if (flag == "auto") return plain;
  KvDtype k{};
  require(parse_kv_dtype(flag, &k), "--kv-cache " + flag + ": expected auto, fp32, fp16, "
                                    "bf16 or int8");
  if (k == KvDtype::INT8) return DType::I8;
  if (k == KvDtype::BF16 && cuda && !gpu_bf16) {
    k = KvDtype::FP16;
    if (note) *note = "--kv-cache bf16 runs as fp16 on this GPU (no bf16 math)";
  }
  const std::string name = kv_dtype_name(kv_dtype_of(plain));
  require(dtype_of(k) == plain,
          "--kv-cache " + flag + " is not supported " +
              (!cuda ? std::string("on the CPU: use fp32 (auto) or int8")
                     : "with compute dtype " + name + ": use " + name +
                           " (auto) or int8, or --dtype to match"));
  return plain;
}

namespace {

// Totals as the cards report them: nvidia-smi's "MiB" column (memory.total), which is what
// a user sees, not the marketing GB. bf16: sm_80 and newer.
struct Card {
  const char* name;
  int64_t mib;
  bool bf16;
  const char* tokens[2];  // words of cudaDeviceProp::name that identify the card
};
const Card kCards[] = {
    {"t4", 15360, false, {"T4", nullptr}},         // Tesla T4 (sm_75)
    {"a10g", 23028, true, {"A10G", nullptr}},      // NVIDIA A10G (AWS g5)
    {"l4", 23034, true, {"L4", nullptr}},          // NVIDIA L4
    {"a100-40g", 40960, true, {"A100", "40GB"}},   // NVIDIA A100-SXM4-40GB / PCIE-40GB
    {"a100-80g", 81920, true, {"A100", "80GB"}},   // NVIDIA A100-SXM4-80GB / 80GB PCIe
    {"h100", 81559, true, {"H100", nullptr}},      // NVIDIA H100 80GB HBM3
};

PlanDevice device_of(const Card& c) {
  return PlanDevice{c.name, c.mib * kMiB, true, c.bf16};
}

}  // namespace

std::optional<PlanDevice> known_gpu(const std::string& name) {
  for (const Card& c : kCards)
    if (name == c.name) return device_of(c);
  return std::nullopt;
}

std::vector<std::string> known_gpu_names() {
  std::vector<std::string> out;
  for (const Card& c : kCards) out.push_back(c.name);
  return out;
}

std::optional<PlanDevice> known_gpu_by_device_name(const std::string& cuda_name) {
  std::vector<std::string> words(1);
  for (char ch : cuda_name) {
    if (ch == ' ' || ch == '-') words.emplace_back();
    else words.back() += ch;
  }
  const auto has = [&](const char* w) {
    return !w || std::find(words.begin(), words.end(), w) != words.end();
  };
  for (const Card& c : kCards)
    if (has(c.tokens[0]) && has(c.tokens[1])) return device_of(c);
  return std::nullopt;
}

PlanDevice host_device() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  PlanDevice d{"cpu", 0, false, true};
  while (f >> key >> kib)
    if (key == "MemTotal:") return d.total_bytes = kib * 1024, d;
  return d;
}

std::vector<int> valid_tp_sizes(const ModelConfig& cfg, int max_tp) {
  std::vector<int> out;
  for (int t = 1; t <= max_tp; ++t) {
    try {
      check_tp_compatible(cfg, t);
      out.push_back(t);
    } catch (const UserError&) {
    }
  }
  return out;
}

}  // namespace tessera
