#include "launcher/model_loading.h"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "parallel/device_comm.h"
#include "parallel/world_comm.h"
#include "runtime/error.h"
#include "runtime/memory_plan.h"
#include "runtime/quant.h"
#include "runtime/weights.h"
#ifdef TESSERA_HAVE_CUDA
#include "runtime/backend_cuda.h"
#include "runtime/cuda_probe.h"
#endif

namespace tessera {

void add_model_options(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("--model", a.model_dir, "Hugging Face model directory");
  cmd->add_option("--model-config", a.model_config,
                  "config.json to build random weights from (with --load-format dummy)");
  cmd->add_option("--load-format", a.load_format, "auto | safetensors | dummy")
      ->check(CLI::IsMember({"auto", "safetensors", "dummy"}));
  cmd->add_option("--dtype", a.dtype,
                  "dummy weight dtype, and the CUDA compute dtype: auto | bfloat16 | float16 | "
                  "float32 (auto on CUDA: the checkpoint's 16-bit dtype, else bfloat16)")
      ->check(CLI::IsMember({"auto", "bfloat16", "float16", "float32", "bf16", "fp16", "fp32"}));
  cmd->add_option("--device", a.device,
                  "auto (a GPU when one is visible, else the CPU) | cpu | cuda | cuda:N")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            if (s == "auto" || s == "cpu" || s == "cuda") return "";
            if (s.rfind("cuda:", 0) == 0 && s.size() > 5 &&
                s.find_first_not_of("0123456789", 5) == std::string::npos)
              return "";
            return "expected auto, cpu, cuda or cuda:N, got " + s;
          },
          "DEVICE", "device"));
  cmd->add_option("--threads", a.threads, "CPU threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--precision", a.precision,
                  "CPU math: auto (int8 activations for int8/int4 weights, F32 for the others) | "
                  "exact (F32 activations) | fast (linear layers read bf16 activations, "
                  "AVX512-BF16; int8 ones for int8/int4 weights, AVX512-VNNI)")
      ->check(CLI::IsMember({"auto", "exact", "fast"}));
  cmd->add_flag("!--no-cuda-graphs", a.cuda_graphs,
                "CUDA: run decode steps without CUDA graphs (also TESSERA_CUDA_GRAPHS=0)");
  cmd->add_option("--weights", a.weights,
                  "q/k/v/o/gate/up/down weights: stored (the checkpoint's dtype) | int8 "
                  "(per-row RTN) | int4 (group-128 asymmetric RTN), quantized at load | auto "
                  "(serve: the least lossy that the memory plan fits)")
      ->check(CLI::IsMember({"stored", "int8", "int4", "auto"}));
  cmd->add_option("--lm-head", a.lm_head,
                  "lm_head weight: stored (as the embedding table) | int8 (per-row RTN, "
                  "quantized at load: half the bytes of a 16-bit lm_head read every step; a "
                  "tied model keeps its table for the lookup and adds the int8 copy)")
      ->check(CLI::IsMember({"stored", "int8"}));
  cmd->add_option("--embeddings", a.embeddings,
                  "where the embedding table lives on a GPU: device | host (pinned host memory "
                  "that the lookup reads over PCIe, one row a token: frees vocab x hidden x 2 "
                  "bytes of the card; a tied model needs --lm-head int8). The CPU holds "
                  "everything in host memory either way")
      ->check(CLI::IsMember({"device", "host"}));
  cmd->add_option("--tp", a.tp, "Tensor-parallel size: must equal the number of MPI ranks")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--comm", a.comm,
                  "Collectives between ranks: auto (NCCL when each GPU rank has its own GPU, "
                  "else MPI) | nccl | mpi (host-staged on GPUs)")
      ->check(CLI::IsMember({"auto", "nccl", "mpi"}));
  cmd->add_option("--kv-cache", a.kv_cache,
                  "KV cache dtype: auto (fp32 on the CPU, the compute dtype on CUDA) | fp32 | "
                  "fp16 | bf16 | int8 (per-token, per-head scales). The CPU takes fp32 or "
                  "int8; CUDA the compute dtype (--dtype) or int8")
      ->check(CLI::IsMember({"auto", "fp32", "fp16", "bf16", "int8"}));
}

static DType parse_dtype(const std::string& s, DType fallback) {
  if (s == "bfloat16" || s == "bf16") return DType::BF16;
  if (s == "float16" || s == "fp16") return DType::F16;
  if (s == "float32" || s == "fp32") return DType::F32;
  return fallback;
}

// The backend --device asks for. auto: a GPU when probe_cuda() sees one, else the CPU with a
// notice. cuda (no index): the GPU of this rank's local rank.
static std::unique_ptr<Backend> make_backend(const ModelArgs& a, const ModelConfig& cfg,
                                             const World& world, bool* gpu_bf16) {
  *gpu_bf16 = false;
  std::string dev = a.device;
  if (dev == "auto") {
#ifdef TESSERA_HAVE_CUDA
    const CudaInfo info = probe_cuda();
    dev = info.device_count > 0 ? "cuda" : "cpu";
    if (dev == "cpu")
      std::fprintf(stderr, "notice: no CUDA device (%s); running on the CPU\n",
                   info.error.empty() ? "none found" : info.error.c_str());
#else
    dev = "cpu";
    std::fprintf(stderr, "notice: built without CUDA; running on the CPU\n");
#endif
  }
  if (dev.rfind("cuda", 0) == 0) {
#ifdef TESSERA_HAVE_CUDA
    // One GPU per local rank; when the node has fewer GPUs than ranks they share them
    // round-robin (the collectives then go through MPI: NCCL needs a GPU per rank).
    const int gpus = probe_cuda().device_count;
    const int index = dev != "cuda" ? std::stoi(dev.substr(5))
                      : gpus > 0    ? world.local_rank % gpus
                                    : world.local_rank;
    if (dev == "cuda" && gpus > 0 && world.local_size > gpus && world.local_rank < gpus)
      std::fprintf(stderr, "notice: %d ranks share %d GPU(s) on this node\n", world.local_size,
                   gpus);
    *gpu_bf16 = cuda_select_device(index).major >= 8;
    DType fallback = cfg.torch_dtype == DType::F16 ? DType::F16 : DType::BF16;
    return make_cuda_backend(index, parse_dtype(a.dtype, fallback));
#else
    throw UserError("no CUDA device: this tessera was built without CUDA (TESSERA_CUDA=OFF)");
#endif
  }
  return make_cpu_backend(a.threads, a.precision == "fast"    ? CpuPrecision::Fast
                                     : a.precision == "exact" ? CpuPrecision::Exact
                                                              : CpuPrecision::QuantizedFast);
}

LoadedModel load_model(const ModelArgs& a) {
  namespace fs = std::filesystem;
  const bool dummy = a.load_format == "dummy";
  LoadedModel lm;
  auto t0 = std::chrono::steady_clock::now();
  ModelConfig cfg;
  std::unique_ptr<TensorSource> src;
  if (dummy) {
    require(!a.model_config.empty() || !a.model_dir.empty(),
            "--load-format dummy needs --model-config FILE (or --model DIR)");
    cfg = load_model_config(a.model_config.empty() ? a.model_dir : a.model_config);
    src = make_dummy_source(cfg, parse_dtype(a.dtype, cfg.torch_dtype), 1234);
  } else {
    require(!a.model_dir.empty(), "--model DIR is required (or --load-format dummy "
                                  "--model-config FILE)");
    require(a.model_config.empty(), "--model-config is only used with --load-format dummy");
    require(fs::is_directory(a.model_dir), "model directory not found: " + a.model_dir);
    cfg = load_model_config(a.model_dir);
    src = open_checkpoint_source(a.model_dir);
  }
  std::unique_ptr<Comm> job = make_world_comm();
  bool gpu_bf16 = false;
  lm.backend = make_backend(a, cfg, job->world(), &gpu_bf16);
  int gpus = 0;
#ifdef TESSERA_HAVE_CUDA
  if (lm.backend->device() == Device::CUDA) gpus = probe_cuda().device_count;
#endif
  std::string chosen;
  lm.comm = make_backend_comm(std::move(job), *lm.backend, parse_comm_kind(a.comm), gpus, &chosen);
  if (lm.comm->world().size > 1 && lm.comm->world().is_root())
    std::fprintf(stderr, "tensor parallel: %d ranks, collectives over %s\n",
                 lm.comm->world().size, chosen.c_str());
  if (!a.cuda_graphs) lm.backend->set_step_capture(false);
  std::string kv_note;  // before the slow part
  const DType kv_dtype = backend_kv_dtype(a.kv_cache, lm.backend->device() == Device::CUDA,
                                          lm.backend->compute_dtype(), gpu_bf16, &kv_note);
  if (!kv_note.empty() && lm.comm->world().is_root())
    std::fprintf(stderr, "notice: %s\n", kv_note.c_str());
  const int world = lm.comm->world().size;
  require(a.tp == 0 || a.tp == world,
          "--tp " + std::to_string(a.tp) + " but " + std::to_string(world) +
              " rank(s) were started: run `mpirun -np " + std::to_string(a.tp) +
              " tessera ...` (one rank per GPU)");
  require(a.weights != "auto", "--weights auto is decided by the memory plan of `tessera "
                               "serve`; here give stored, int8 or int4");
  ModelWeights w = load_model_weights(*src, cfg, *lm.backend, lm.comm->world(),
                                      parse_weight_format(a.weights),
                                      parse_weight_format(a.lm_head),
                                      a.embeddings == "host" ? EmbeddingPlacement::Host
                                                             : EmbeddingPlacement::Device);
  lm.model = std::make_unique<Model>(cfg, std::move(w), *lm.backend, *lm.comm);
  lm.model->set_kv_dtype(kv_dtype);
  lm.load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return lm;
}

}  // namespace tessera
