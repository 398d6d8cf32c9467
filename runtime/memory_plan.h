// The memory plan: what one rank of a model needs on a card, computed before anything is
// allocated, and how many paged KV blocks are left for the cache. Pure arithmetic: no GPU is
// touched, so `tessera plan` runs anywhere and the engine calls the same code at start-up.
//
// Per rank, against the card's total (as nvidia-smi reports it) times gpu_memory_utilization:
//   kv_budget = total * utilization - weights - activation workspace - runtime reserve
//   kv_blocks = floor(kv_budget / (block_size * kv_bytes_per_token))
// The engine allocates the same number of blocks on every rank, so the plan's kv_blocks is
// the minimum over ranks.
//
// Weight bytes per rank (shards as parallel/shard_rules: vocab ceil(V / tp) rows, heads / tp,
// kv heads replicated when kv_heads < tp, intermediate / tp):
//   fp32 | bf16 | fp16: every matrix in that dtype.
//   int8: each *_proj weight [out, in] as int8 (1 byte/weight) + one F32 scale per output
//         row [out] (symmetric, per output channel; WeightFormat::Int8).
//   int4: each *_proj weight [out, in] packed two per byte (0.5 byte/weight) + per (row,
//         group of 128 input features) one F32 scale and one zero-point byte: scales [out,
//         ceil(in / 128)] F32 and zeros [out, ceil(in / 128)] I8 (asymmetric, group 128).
//         This is the layout of WeightFormat::Int4 in runtime/backend.h (runtime/quant.h).
//         An AWQ / GPTQ checkpoint (runtime/prequantized.h) is int4 as stored, with its own
//         group size (-1: one group per row) and, with GPTQ act-order, an I32 input
//         permutation [in] per layer (padding under tp > 1 when a rank holds part of a
//         group is not counted).
//   Quantized formats cover the *_proj weights only: the embedding table and lm_head keep
//   the unquantized dtype (the compute dtype on a GPU, the stored dtype on the CPU), unless
//   lm_head is int8 (--lm-head int8): [vocab_local, hidden] int8 + an F32 scale per row.
//   Norms and biases are always F32; a row-split layer's bias (down_proj) lives on rank 0.
//   A tied model holds one table (counted under embeddings; lm_head is 0); with an int8
//   lm_head it also holds that int8 copy of the table (counted under lm_head).
//   --embeddings host (GPU): the table lives in pinned host memory in the compute dtype
//   (WeightBytes::embeddings_in_host, not on the card: embeddings is 0). A tied model needs
//   an int8 lm_head for it (else the logits would read the table over PCIe every step).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/dtype.h"
#include "runtime/model_config.h"

namespace tessera {

// The weights a plan is made for: a dense dtype or a quantized layout (runtime/quant.h
// makes those; its WeightFormat says Dense/Int8/Int4, the dense dtype being separate).
enum class WeightChoice : uint8_t { FP32, BF16, FP16, INT8, INT4 };
enum class KvDtype : uint8_t { FP32, FP16, BF16, INT8 };

const char* weight_choice_name(WeightChoice f);  // "fp32" .. "int4"
const char* kv_dtype_name(KvDtype k);            // "fp32" .. "int8"
// Parse "fp32|bf16|fp16|int8|int4" (also "float32", "bfloat16", "float16"); false if unknown.
bool parse_weight_choice(const std::string& s, WeightChoice* out);
bool parse_kv_dtype(const std::string& s, KvDtype* out);
// A float KV cache in `dtype` (F32, F16 or BF16), and back.
KvDtype kv_dtype_of(DType dtype);
DType dtype_of(KvDtype k);  // I8 for INT8
// The cache dtype a backend runs `--kv-cache flag` ("auto" or a KvDtype name) with: the CPU
// reads F32 or I8, CUDA its compute dtype or I8; bf16 on a GPU without bf16 math (sm_75)
// runs as fp16, as plan_memory says (*note then says so). UserError for the others.
DType backend_kv_dtype(const std::string& flag, bool cuda, DType compute, bool gpu_bf16,
                       std::string* note);

// The memory a plan is made against: one card (or the host, for the CPU backend).
struct PlanDevice {
  std::string name;         // "t4", "a100-80g", "24 GiB", "cpu"
  int64_t total_bytes = 0;  // per card; on the CPU: the host's MemTotal, shared by all ranks
  bool cuda = true;         // false: CPU backend (F32 compute, F32 KV cache, no CUDA reserve)
  bool bf16 = true;         // bf16 math (sm_80+); false on a T4 (sm_75): bf16 runs as fp16
};

// Cards by name: t4, a10g, l4, a100-40g, a100-80g, h100 (nvidia-smi totals).
std::optional<PlanDevice> known_gpu(const std::string& name);
std::vector<std::string> known_gpu_names();
// The known card whose CUDA device name (cudaDeviceProp::name, e.g. "Tesla T4") this is.
std::optional<PlanDevice> known_gpu_by_device_name(const std::string& cuda_name);
// The host as a device: MemTotal from /proc/meminfo.
PlanDevice host_device();

struct PlanRequest {
  ModelConfig model;
  PlanDevice device;
  int tp = 1;
  // nullopt: as stored (the checkpoint's torch_dtype; on a GPU its compute dtype, so F32
  // checkpoints plan as 16-bit and bf16 as fp16 on a card without bf16 math).
  std::optional<WeightChoice> weights;
  bool weights_auto = false;     // least lossy of stored -> int8 -> int4 that fits
  bool lm_head_int8 = false;     // --lm-head int8 (per-row RTN); false: as the tables
  bool embeddings_host = false;  // --embeddings host: the table in pinned host memory (GPU)
  std::optional<KvDtype> kv;     // nullopt: the compute dtype (F32 on the CPU)
  // GPU compute dtype (--dtype); nullopt: the checkpoint's 16-bit dtype (bf16 for F32
  // checkpoints), fp16 on a card without bf16 math. The CPU always computes in F32.
  std::optional<DType> compute;
  int64_t max_model_len = 0;     // 0: the model's max_position_embeddings
  bool max_model_len_auto = false;  // the largest that fits, up to max_position_embeddings
  double gpu_memory_utilization = 0.90;  // vLLM's default
  int64_t max_num_batched_tokens = 2048;
  int64_t max_num_seqs = 64;
  int64_t block_size = 16;
};

// Weight bytes of one rank by kind.
struct WeightBytes {
  int64_t embeddings = 0;  // [vocab_local, hidden]
  int64_t layers = 0;      // every decoder layer's projections, norms and biases + final norm
  int64_t lm_head = 0;     // [vocab_local, hidden]; 0 when tied to the embeddings
  int64_t embeddings_in_host = 0;  // --embeddings host on a GPU: the table, in host memory
  int64_t total() const { return embeddings + layers + lm_head; }  // on the device
};

// Fixed device memory that is neither weights, workspace nor KV cache (see memory_plan.cpp
// for each constant and why).
struct RuntimeReserve {
  int64_t cuda_context = 0, cublas_workspace = 0, cuda_graphs = 0, nccl = 0, host_process = 0;
  int64_t dequant_scratch = 0;  // CUDA int8/int4 prefill: dequantized rows of one layer
  int64_t total() const {
    return cuda_context + cublas_workspace + cuda_graphs + nccl + host_process +
           dequant_scratch;
  }
};

struct RankPlan {
  int rank = 0;
  int64_t heads = 0, kv_heads = 0, intermediate = 0, vocab_local = 0;  // this rank's shard
  WeightBytes weights;
  int64_t workspace = 0;   // activations for max_num_batched_tokens (memory_plan.cpp)
  RuntimeReserve reserve;
  int64_t total = 0;       // the memory this rank may use at all (card, or host / tp)
  int64_t usable = 0;      // total * gpu_memory_utilization
  int64_t kv_budget = 0;   // usable - weights - workspace - reserve (negative: no room)
  int64_t kv_blocks = 0;   // what this rank's budget holds
};

// A different request that fits, with its own numbers.
struct PlanOption {
  std::string change;  // the flags that make it, e.g. "--weights int4", "--tp 2"
  bool fits = false;
  int tp = 1;
  int64_t max_model_len = 0, max_concurrent_at_max_len = 0, kv_blocks = 0;
  int64_t weights_bytes_per_rank = 0, kv_bytes_per_token = 0;
};

struct Plan {
  PlanRequest request;        // as asked (weights/kv nullopt when stored/auto)
  WeightChoice weights = WeightChoice::FP16;  // resolved
  KvDtype kv = KvDtype::FP16;                 // resolved
  DType compute = DType::F16;                 // activations (F32 on the CPU)
  int64_t kv_bytes_per_token = 0;  // per rank: 2 x layers x kv_heads_local x head_dim x bytes
  int64_t kv_block_bytes = 0;      // block_size x kv_bytes_per_token
  std::vector<RankPlan> ranks;     // one per rank
  int64_t kv_blocks = 0;           // min over ranks
  int64_t max_model_len = 0;       // requested, or the auto choice
  bool fits = false;               // kv_blocks hold at least one sequence of max_model_len
  int64_t max_concurrent_at_max_len = 0;  // kv_blocks / blocks per max_model_len sequence
  std::vector<std::string> notes;  // decisions (auto modes) and substitutions (bf16 -> fp16)
  std::vector<PlanOption> options; // when it does not fit: changes that would

  int64_t weights_bytes_per_rank() const;  // the largest rank's
  int64_t kv_tokens() const { return kv_blocks * request.block_size; }
};

// Plans `req`. Throws UserError for a request that cannot be planned at all (tp invalid for
// the model, listing the valid sizes; utilization outside (0, 1]; max_model_len beyond the
// model's max; host embeddings for a tied model with a stored lm_head). A plan that does not
// fit is not an error: fits is false and options say why.
Plan make_plan(const PlanRequest& req);

// Tensor-parallel sizes the model can be split over, 1 .. max_tp.
std::vector<int> valid_tp_sizes(const ModelConfig& cfg, int max_tp);

// The plan as text (a table per group of alike ranks, then the verdict and the options) and
// as JSON (memory_plan_report.cpp). `model_name` labels the model.
std::string plan_table(const Plan& plan, const std::string& model_name);
nlohmann::ordered_json plan_json(const Plan& plan, const std::string& model_name);

}  // namespace tessera
