#include "launcher/startup_plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "runtime/error.h"
#include "runtime/model_config.h"
#ifdef TESSERA_HAVE_CUDA
#include "runtime/backend_cuda.h"
#include "runtime/cuda_probe.h"
#endif

namespace tessera {
namespace {

#ifdef TESSERA_HAVE_CUDA
// The CUDA device this rank will use, if any (the same choice as load_model's).
int gpu_index(const ModelArgs& a, int local_rank) {
  if (a.device == "cpu") return -1;
  const int gpus = probe_cuda().device_count;
  if (gpus == 0) return -1;
  if (a.device.rfind("cuda:", 0) == 0) return std::stoi(a.device.substr(5));
  return local_rank % gpus;
}
#endif

PlanDevice plan_device(const ModelArgs& a, int local_rank) {
  (void)a, (void)local_rank;  // only a CUDA build has a GPU to look at
#ifdef TESSERA_HAVE_CUDA
  const int index = gpu_index(a, local_rank);
  if (index >= 0) {
    const CudaDeviceInfo d = cuda_select_device(index);
    PlanDevice p = known_gpu_by_device_name(d.name).value_or(PlanDevice{d.name, 0, true, true});
    p.total_bytes = int64_t(d.total_bytes);  // what this card reports, not the table's
    p.bf16 = d.major >= 8;
    return p;
  }
#endif
  return host_device();
}

std::optional<DType> compute_dtype(const std::string& s) {
  if (s == "bfloat16" || s == "bf16") return DType::BF16;
  if (s == "float16" || s == "fp16") return DType::F16;
  if (s == "float32" || s == "fp32") return DType::F32;
  return std::nullopt;
}

}  // namespace

StartupPlan plan_startup(ModelArgs& args, const StartupPlanInputs& in, int tp, int local_rank,
                         bool print) {
  const bool dummy = args.load_format == "dummy";
  const std::string src = dummy && !args.model_config.empty() ? args.model_config : args.model_dir;
  require(!src.empty(), "--model DIR is required");
  PlanRequest req;
  req.model = load_model_config(src);
  req.device = plan_device(args, local_rank);
  req.tp = tp;
  if (args.weights == "auto") req.weights_auto = true;
  if (args.weights == "int8") req.weights = WeightChoice::INT8;
  if (args.weights == "int4") req.weights = WeightChoice::INT4;
  req.lm_head_int8 = args.lm_head == "int8";
  req.embeddings_host = args.embeddings == "host";
  if (args.kv_cache != "auto") {
    KvDtype kv;
    require(parse_kv_dtype(args.kv_cache, &kv), "--kv-cache: unknown dtype " + args.kv_cache);
    req.kv = kv;
  }
  req.compute = compute_dtype(args.dtype);
  req.max_model_len = in.max_model_len;
  req.max_model_len_auto = in.max_model_len_auto;
  req.gpu_memory_utilization = in.gpu_memory_utilization;
  req.max_num_seqs = in.max_num_seqs;
  req.max_num_batched_tokens = in.max_num_batched_tokens;
  req.block_size = in.block_size;

  StartupPlan sp{make_plan(req), req.device.cuda};
  const Plan& p = sp.plan;
  if (args.weights == "auto")
    args.weights = p.weights == WeightChoice::INT8   ? "int8"
                   : p.weights == WeightChoice::INT4 ? "int4"
                                                      : "stored";
  const std::string name = std::filesystem::path(src).filename().string();
  if (print) {
    std::fprintf(stderr, "%s", plan_table(p, name).c_str());
    if (req.weights_auto) std::fprintf(stderr, "--weights auto: %s\n", args.weights.c_str());
    if (req.max_model_len_auto)
      std::fprintf(stderr, "--max-model-len auto: %lld\n", (long long)p.max_model_len);
    std::fflush(stderr);
  }
  // On the CPU the KV cache comes from --kv-cache-memory (the plan only decides the auto
  // modes); on a GPU the plan is the allocation, so a plan that does not fit stops here.
  if (!p.fits && !sp.on_gpu) {
    if (print) std::fprintf(stderr, "notice: the memory plan does not fit this host\n");
    return sp;
  }
  if (!p.fits) {
    std::string msg = "the model does not fit " + req.device.name + " at max-model-len " +
                      std::to_string(p.max_model_len) + " (`tessera plan` explains why)";
    if (!p.options.empty()) msg += "; options that fit:";
    for (const PlanOption& o : p.options)
      if (o.fits)
        msg += " [" + o.change + ": max-model-len " + std::to_string(o.max_model_len) + ", " +
               std::to_string(o.max_concurrent_at_max_len) + " sequences]";
    throw UserError(msg);
  }
  return sp;
}

void report_plan_vs_device(const StartupPlan& sp, const ModelArgs& args, int rank,
                           int local_rank, int64_t kv_bytes_allocated) {
#ifdef TESSERA_HAVE_CUDA
  const int index = gpu_index(args, local_rank);
  if (!sp.on_gpu || index < 0) return;
  const RankPlan& r = sp.plan.ranks[size_t(std::min<int>(rank, int(sp.plan.ranks.size()) - 1))];
  const int64_t planned = r.weights.total() + r.workspace + r.reserve.total() + kv_bytes_allocated;
  const CudaDeviceInfo d = cuda_select_device(index);  // also re-selects this rank's device
  const int64_t used = int64_t(d.total_bytes) - int64_t(d.free_bytes);
  std::fprintf(stderr,
               "memory plan (rank %d, %s): planned %.0f MiB (weights %.0f, workspace %.0f, "
               "reserve %.0f, KV %.0f); the device reports %.0f MiB in use of %.0f MiB\n",
               rank, d.name.c_str(), planned / 1048576.0, r.weights.total() / 1048576.0,
               r.workspace / 1048576.0, r.reserve.total() / 1048576.0,
               kv_bytes_allocated / 1048576.0, used / 1048576.0, d.total_bytes / 1048576.0);
#else
  (void)sp, (void)args, (void)rank, (void)local_rank, (void)kv_bytes_allocated;
#endif
}

}  // namespace tessera
