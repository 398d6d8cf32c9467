// tessera plan: the memory plan of a model on a card (or several), without a GPU. Prints a
// table per rank and the verdict; when it does not fit, the options that would.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "launcher/cli_parse.h"
#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "runtime/error.h"
#include "runtime/memory_plan.h"
#ifdef TESSERA_HAVE_CUDA
#include "runtime/cuda_probe.h"
#endif

namespace tessera {
namespace {

struct PlanArgs {
  std::string model_dir, model_config, gpu, device = "auto";
  int tp = 1;
  std::string weights = "stored", lm_head = "stored", embeddings = "device", kv_cache = "auto",
              max_model_len, dtype = "auto";
  double gpu_memory_utilization = 0.90;
  int64_t max_num_seqs = 64, max_num_batched_tokens = 2048, block_size = 16;
  bool json = false;
};

std::string known_list() {
  std::string s;
  for (const std::string& n : known_gpu_names()) s += n + ", ";
  return s;
}

// --gpu: a known card or a size in GiB ("24", "24GiB").
PlanDevice parse_gpu(const std::string& text) {
  if (std::optional<PlanDevice> d = known_gpu(text)) return *d;
  const auto [gib, unit] = split_number_unit(text);
  require(unit != text && (unit.empty() || unit == "GiB" || unit == "G") && gib > 0 && gib < 1e6,
          "--gpu: unknown card \"" + text + "\" (expected " + known_list() +
              "or a size in GiB)");
  char name[64];
  std::snprintf(name, sizeof name, "%g GiB", gib);
  // An unnamed card is taken to be sm_80 or newer (bf16 math).
  return PlanDevice{name, int64_t(gib * double(1 << 30)), true, true};
}

// No --gpu: the visible GPU when it is a known card, else (--device auto) the host.
PlanDevice default_device(const PlanArgs& a) {
#ifdef TESSERA_HAVE_CUDA
  const CudaInfo info = probe_cuda();
  if (info.device_count > 0) {
    const std::optional<PlanDevice> d = known_gpu_by_device_name(info.device_name);
    require(d.has_value(), "the visible GPU \"" + info.device_name +
                               "\" is not a card tessera knows: give --gpu NAME or --gpu GiB");
    std::fprintf(stderr, "notice: planning for the visible GPU (%s = %s)\n",
                 info.device_name.c_str(), d->name.c_str());
    return *d;
  }
#endif
  require(a.device == "auto", "no GPU is visible: give --gpu " + known_list() + "or GiB");
  std::fprintf(stderr, "notice: no --gpu given and no GPU visible: planning for the CPU "
                       "(host memory)\n");
  return host_device();
}

PlanDevice plan_device(const PlanArgs& a) {
  if (a.device == "cpu") {
    require(a.gpu.empty(), "--gpu names a card but --device cpu plans the host: give one");
    return host_device();
  }
  return a.gpu.empty() ? default_device(a) : parse_gpu(a.gpu);
}

// The model's name in the plan: its directory's name, or the config file's.
std::string model_name(const std::string& path, bool is_dir) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (!is_dir && p.filename() == "config.json") p = p.parent_path();
  const std::string name = is_dir || p.extension() != ".json" ? p.filename().string()
                                                              : p.stem().string();
  return name.empty() ? path : name;
}

std::pair<ModelConfig, std::string> plan_model(const PlanArgs& a) {
  require(a.model_dir.empty() != a.model_config.empty(),
          "give one of --model DIR or --model-config FILE");
  const bool dir = !a.model_dir.empty();
  const std::string& path = dir ? a.model_dir : a.model_config;
  return {load_model_config(path), model_name(path, dir)};
}

int run_plan(const PlanArgs& a) {
  auto [cfg, name] = plan_model(a);
  PlanRequest r;
  r.model = cfg;
  r.device = plan_device(a);
  r.tp = a.tp;
  if (a.weights == "auto") {
    r.weights_auto = true;
  } else if (a.weights != "stored") {
    WeightChoice f;
    require(parse_weight_choice(a.weights, &f),
            "--weights: expected auto, stored, fp32, bf16, fp16, int8 or int4, got \"" +
                a.weights + "\"");
    r.weights = f;
  }
  r.lm_head_int8 = a.lm_head == "int8";
  r.embeddings_host = a.embeddings == "host";
  if (a.kv_cache != "auto") {
    KvDtype k;
    require(parse_kv_dtype(a.kv_cache, &k),
            "--kv-cache: expected auto, fp32, fp16, bf16 or int8, got \"" + a.kv_cache + "\"");
    r.kv = k;
  }
  if (a.max_model_len == "auto") {
    r.max_model_len_auto = true;
  } else if (!a.max_model_len.empty()) {
    const std::optional<long long> v = parse_integer(a.max_model_len);
    require(v && *v > 0, "--max-model-len: expected a positive number of tokens or auto, got \"" +
                             a.max_model_len + "\"");
    r.max_model_len = *v;
  }
  if (a.dtype == "bfloat16" || a.dtype == "bf16") r.compute = DType::BF16;
  if (a.dtype == "float16" || a.dtype == "fp16") r.compute = DType::F16;
  if (a.dtype == "float32" || a.dtype == "fp32") r.compute = DType::F32;
  r.gpu_memory_utilization = a.gpu_memory_utilization;
  r.max_num_seqs = a.max_num_seqs;
  r.max_num_batched_tokens = a.max_num_batched_tokens;
  r.block_size = a.block_size;
  const Plan plan = make_plan(r);
  if (a.json)
    std::cout << plan_json(plan, name).dump() << std::endl;
  else
    std::cout << plan_table(plan, name) << std::flush;
  return 0;
}

}  // namespace

CommandRunner register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Plan memory: weights, workspace, reserve and KV cache per rank (no GPU needed)");
  cmd->add_option("--model", a->model_dir, "Hugging Face model directory (reads config.json)");
  cmd->add_option("--model-config", a->model_config, "A config.json file");
  cmd->add_option("--gpu", a->gpu,
                  "Card: t4 | a10g | l4 | a100-40g | a100-80g | h100 | a size in GiB "
                  "(default: the visible GPU, else the host)");
  cmd->add_option("--device", a->device, "auto | cpu (plan the host: CPU backend) | cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--dtype", a->dtype,
                  "GPU compute dtype, as for serve: auto | bfloat16 | float16 | float32")
      ->check(CLI::IsMember({"auto", "bfloat16", "float16", "float32", "bf16", "fp16", "fp32"}));
  cmd->add_option("--tp", a->tp, "Tensor-parallel size: one card per rank")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--weights", a->weights,
                  "auto | stored (default: the checkpoint's dtype) | fp32 | bf16 | fp16 | "
                  "int8 | int4");
  cmd->add_option("--lm-head", a->lm_head, "stored (as the embedding table) | int8")
      ->check(CLI::IsMember({"stored", "int8"}));
  cmd->add_option("--embeddings", a->embeddings,
                  "device | host (the table in pinned host memory, not on the card; a tied "
                  "model needs --lm-head int8)")
      ->check(CLI::IsMember({"device", "host"}));
  cmd->add_option("--kv-cache", a->kv_cache,
                  "auto (the compute dtype) | fp32 | fp16 | bf16 | int8");
  cmd->add_option("--max-model-len", a->max_model_len,
                  "Tokens per sequence, or auto: the most that fits (default: the model's max)");
  cmd->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                  "Fraction of the card's memory to use, in (0, 1] (default 0.90)");
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "Sequences per step (default 64)");
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens,
                  "Tokens per step: sizes the activation workspace (default 2048)");
  cmd->add_option("--block-size", a->block_size, "Tokens per KV block (default 16)");
  cmd->add_flag("--json", a->json, "Print one JSON object on the last line");
  add_config_option(cmd);
  return [a] { return run_plan(*a); };
}

}  // namespace tessera
