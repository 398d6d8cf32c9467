// The memory plan at start-up: `tessera serve` plans the model on the device it will run on
// before any weight is loaded (runtime/memory_plan.h, the same arithmetic `tessera plan`
// prints), decides `--weights auto` and `--max-model-len auto` from it, refuses a plan that
// does not fit with the options that would, and on a GPU sizes the KV cache from it.
#pragma once
#include <cstdint>
#include <string>

#include "launcher/model_loading.h"
#include "runtime/memory_plan.h"

namespace tessera {

struct StartupPlanInputs {
  int64_t max_model_len = 0;        // 0: the model's max_position_embeddings
  bool max_model_len_auto = false;  // the longest context that fits
  double gpu_memory_utilization = 0.90;
  int64_t max_num_seqs = 64, max_num_batched_tokens = 2048, block_size = 16;
};

struct StartupPlan {
  Plan plan;
  bool on_gpu = false;  // the plan is against a GPU (its KV blocks size the cache)
};

// Plans `args`' model for this rank's device (`local_rank` picks the GPU like load_model).
// Writes --weights auto's choice back into args.weights; prints the table and the decisions
// on stderr when `print`. UserError when the plan does not fit (message: the options).
StartupPlan plan_startup(ModelArgs& args, const StartupPlanInputs& in, int tp, int local_rank,
                         bool print);

// After loading, on a GPU: what the device has left next to what the plan expected to be
// left, on stderr (the plan's accuracy, measured).
void report_plan_vs_device(const StartupPlan& sp, const ModelArgs& args, int rank,
                           int local_rank, int64_t kv_bytes_allocated);

}  // namespace tessera
