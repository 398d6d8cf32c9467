// Options shared by the commands that load a model, and the loading itself.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "parallel/comm.h"
#include "runtime/backend.h"
#include "runtime/model.h"

namespace tessera {

struct ModelArgs {
  std::string model_dir;         // --model DIR
  std::string model_config;      // --model-config FILE (with --load-format dummy)
  std::string load_format = "auto";  // auto | safetensors | dummy
  std::string dtype = "auto";    // dummy weights: bfloat16 | float16 | float32
  std::string device = "cpu";    // auto | cpu | cuda | cuda:N
  int threads = 0;               // 0: all cores
  int tp = 0;                    // 0: whatever mpirun started (1 without mpirun)
  std::string precision = "auto";  // CPU: auto (int8 x for int8/int4 weights) | exact | fast
  bool cuda_graphs = true;       // --no-cuda-graphs: run decode steps without CUDA graphs
  std::string weights = "stored";  // *_proj weights: stored | int8 | int4 (runtime/quant.h)
  std::string lm_head = "stored";  // stored | int8 (per-row RTN)
  std::string embeddings = "device";  // device | host (GPU: the table in pinned host memory)
  std::string comm = "auto";     // auto | nccl | mpi (host-staged on GPU ranks)
  std::string kv_cache = "auto";  // auto (CPU fp32, CUDA the compute dtype) | fp32 | fp16 |
                                  // bf16 | int8 (per-token, per-head scales)
};

void add_model_options(CLI::App* cmd, ModelArgs& args);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Comm> comm;
  std::unique_ptr<Model> model;
  double load_seconds = 0;
};

// Throws UserError for a bad combination of options or a bad checkpoint.
LoadedModel load_model(const ModelArgs& args);

}  // namespace tessera
