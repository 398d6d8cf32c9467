#include "runtime/memory_plan.h"
#include "runtime/memory_plan_fixed.h"

#include <algorithm>
#include <cmath>

#include "kernels/quant_matmul.h"
#include "parallel/shard_rules.h"
#include "runtime/error.h"

namespace tessera {
namespace {

constexpr int64_t kMiB = int64_t(1) << 20;

// Runtime reserve, per rank. Device memory the process holds besides weights, workspace and
// KV cache; over-estimated on purpose, because a plan that says yes must not OOM.
// CUDA context: the primary context with tessera's kernels and cuBLAS/cuBLASLt's loaded
// (lazy module loading, CUDA 12): measured figures for such processes are 300-450 MiB.
constexpr int64_t kCudaContext = 400 * kMiB;
// cuBLAS workspace: the fixed one backend_cuda.cu hands cublasSetWorkspace (kCublasWorkspace).
constexpr int64_t kCublasWorkspace = 32 * kMiB;
// CUDA graphs: up to 64 captured decode graphs (kMaxGraphs in backend_cuda.cu); each holds
// its instantiated kernel nodes (~ a few hundred KiB for a 28-80 layer step) but no
// activations (they use the fixed workspace). Also covers the batch index arrays (ids,
// positions, slots, block tables of max_num_seqs sequences: well under 1 MiB each) and the
// 4 MiB of split-K attention partials (kAttentionScratch in backend_cuda.cu).
constexpr int64_t kCudaGraphs = 64 * kMiB;
// NCCL (tp > 1): per peer and channel the Simple/LL/LL128 protocol buffers (NCCL_BUFFSIZE
// 4 MiB by default) plus its proxy and ring state; 2-8 GPUs use ~100-250 MiB per GPU.
constexpr int64_t kNccl = 256 * kMiB;
// CPU backend: the process beside its tensors (code, tokenizer, OpenMP stacks, host logits).
constexpr int64_t kHostProcess = 256 * kMiB;

// CUDA prefill with quantized weights dequantizes blocks of rows of a layer into one
// scratch buffer (kernels/quant_matmul.h), sized for the layer that needs the most.
int64_t dequant_scratch_bytes(int64_t out, int64_t in, int64_t elem) {
  return quant_scratch_rows(out, in, size_t(elem), kQuantScratchMaxBytes) * in * elem;
}

constexpr int64_t kInt4Group = 128;  // input features per int4 scale/zero pair

int64_t fp_bytes(WeightChoice f) {
  return f == WeightChoice::FP32 ? 4 : 2;  // only for fp32 / bf16 / fp16
}

bool quantized(WeightChoice f) { return f == WeightChoice::INT8 || f == WeightChoice::INT4; }

WeightChoice format_of(DType t) {
  return t == DType::F32 ? WeightChoice::FP32
                         : t == DType::BF16 ? WeightChoice::BF16 : WeightChoice::FP16;
}

// int4 layout of the *_proj weights: inputs per scale (0: the whole row) and whether each
// layer carries an input permutation (I32 per input): GPTQ act-order.
struct Int4Layout {
  int64_t group = kInt4Group;
  bool perm = false;
};

Int4Layout int4_layout(const ModelConfig& c) {
  if (!c.prequant.active()) return {};
  return {c.prequant.group_size, c.prequant.desc_act};
}

// Bytes of one [out, in] projection weight in format f (unquantized: `fp` bytes a weight).
int64_t linear_bytes(int64_t out, int64_t in, WeightChoice f, int64_t fp, Int4Layout l) {
  switch (f) {
    case WeightChoice::INT8:
      return out * in + out * 4;  // int8 weights + F32 scale per output row
    case WeightChoice::INT4:      // packed nibbles + per (row, group) F32 scale + I8 zero
      return out * ceil_div(in, 2) + out * ceil_div(in, l.group > 0 ? l.group : in) * (4 + 1) +
             (l.perm ? in * 4 : 0);
    default:
      return out * in * fp;
  }
}

// What the request resolves to on its device: weight format, KV dtype, compute dtype.
struct Resolved {
  WeightChoice weights;
  KvDtype kv;
  DType compute;
  int64_t table_bytes;  // bytes per element of the embedding table and lm_head
};

Resolved resolve(const PlanRequest& r, std::vector<std::string>* notes) {
  const ModelConfig& c = r.model;
  Resolved s{};
  // GPUs compute in the checkpoint's 16-bit dtype (F32 checkpoints are converted), fp16 on
  // cards without bf16 math; the CPU computes in F32 and reads weights as stored.
  if (!r.device.cuda)
    s.compute = DType::F32;
  else
    s.compute = r.compute.value_or(c.torch_dtype == DType::F16 ? DType::F16 : DType::BF16);
  if (s.compute == DType::BF16 && r.device.cuda && !r.device.bf16) {
    s.compute = DType::F16;
    notes->push_back(std::string(r.compute ? "--dtype bfloat16" : "the checkpoint is bf16") +
                     "; " + r.device.name + " has no bf16 math (sm_75): computing in fp16");
  }
  // An AWQ / GPTQ checkpoint is int4 as stored (runtime/prequantized.h).
  const WeightChoice stored = c.prequant.active() ? WeightChoice::INT4
                              : r.device.cuda     ? format_of(s.compute)
                                                  : format_of(c.torch_dtype);
  require(!c.prequant.active() || !r.weights || *r.weights == WeightChoice::INT4,
          std::string("the checkpoint is already 4-bit (") + c.prequant.name() +
              "): --weights must be stored, auto or int4");
  s.weights = r.weights.value_or(stored);
  if (s.weights == WeightChoice::BF16 && r.device.cuda && !r.device.bf16) {
    s.weights = WeightChoice::FP16;
    notes->push_back("--weights bf16 runs as fp16 on " + r.device.name + " (no bf16 math)");
  }
  s.table_bytes = quantized(s.weights) ? int64_t(dtype_size(r.device.cuda ? s.compute
                                                                          : c.torch_dtype))
                                       : fp_bytes(s.weights);
  if (!c.prequant.modules_to_not_convert.empty() || !c.prequant.excluded_patterns.empty())
    notes->push_back("modules named by quantization_config.modules_to_not_convert or a "
                     "dynamic exclusion stay unquantized (" +
                     std::to_string(s.table_bytes) + " bytes a weight)");
  s.kv = r.kv.value_or(kv_dtype_of(s.compute));
  if (s.kv == KvDtype::BF16 && r.device.cuda && !r.device.bf16) {
    s.kv = KvDtype::FP16;
    notes->push_back("--kv-cache bf16 runs as fp16 on " + r.device.name + " (no bf16 math)");
  }
  return s;
}

int64_t kv_bytes_per_token(const ModelConfig& c, int64_t kv_heads_local, KvDtype kv) {
  const int64_t per_head = kv == KvDtype::FP32 ? 4 * c.head_dim
                           : kv == KvDtype::INT8 ? c.head_dim + 4  // + F32 scale per token
                                                 : 2 * c.head_dim;
  return 2 * c.num_layers * kv_heads_local * per_head;  // K and V
}

RankPlan plan_rank(const PlanRequest& r, const Resolved& s, int rank) {
  const ModelConfig& c = r.model;
  const LocalDims d = local_dims(c, World{rank, r.tp, rank});
  RankPlan p;
  p.rank = rank;
  p.heads = d.num_heads;
  p.kv_heads = d.num_kv_heads;
  p.intermediate = d.intermediate;
  p.vocab_local = d.vocab_local;
  const int64_t H = c.hidden_size, hd = c.head_dim, I = d.intermediate;
  const int64_t q = d.num_heads * hd, kv = d.num_kv_heads * hd;
  const int64_t fp = quantized(s.weights) ? 0 : fp_bytes(s.weights);

  // Weights by kind.
  p.weights.embeddings = d.vocab_local * H * s.table_bytes;  // [vocab_local, H]
  if (r.embeddings_host && r.device.cuda)
    std::swap(p.weights.embeddings, p.weights.embeddings_in_host);
  p.weights.lm_head = r.lm_head_int8 ? linear_bytes(d.vocab_local, H, WeightChoice::INT8, 0, {})
                      : c.tie_word_embeddings ? 0 : d.vocab_local * H * s.table_bytes;
  const Int4Layout l = int4_layout(c);
  // Layers a pre-quantized checkpoint leaves unquantized load as stored, like the tables.
  auto proj = [&](const std::string& name, int64_t out, int64_t in) {
    return c.prequant.skips(name) ? out * in * s.table_bytes
                                  : linear_bytes(out, in, s.weights, fp, l);
  };
  int64_t per_layer = 2 * H * 4;                               // input / post-attention norms
  if (c.attention_bias) per_layer += (q + 2 * kv) * 4;         // q/k/v biases
  if (c.mlp_bias) per_layer += (2 * I + (rank == 0 ? H : 0)) * 4;  // down's bias on rank 0
  p.weights.layers = c.num_layers * per_layer + H * 4;         // + final norm [H]
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string a = "model.layers." + std::to_string(i) + ".self_attn.";
    const std::string m = "model.layers." + std::to_string(i) + ".mlp.";
    p.weights.layers += proj(a + "q_proj", q, H) + proj(a + "k_proj", kv, H) +
                        proj(a + "v_proj", kv, H) + proj(a + "o_proj", H, q) +  // o: row split
                        proj(m + "gate_proj", I, H) + proj(m + "up_proj", I, H) +
                        proj(m + "down_proj", H, I);                              // down: row split
  }

  // Activation workspace: the model's named buffers (Model::reserve_workspace) for a step
  // of n = max_num_batched_tokens tokens, r = min(max_num_seqs, n) of which need logits;
  // c = compute dtype bytes:
  //   2*n*H*4 (residual and projection out, F32) + n*H*c (normed) + 2*n*q*c (q, attention
  //   out) + 2*n*kv*c (k, v) + 3*n*I*c (gate, up, act) + r*H*c (last hidden) + r*V_local*4
  //   (logits)
  const int64_t n = r.max_num_batched_tokens, nl = std::min(r.max_num_seqs, n);
  const int64_t cb = int64_t(dtype_size(s.compute));
  p.workspace = 2 * n * H * 4 + n * H * cb + 2 * n * q * cb + 2 * n * kv * cb +
                3 * n * I * cb + nl * H * cb + nl * d.vocab_local * 4;
  // GPTQ act-order: x gathered into quantization order, as wide as the widest layer input.
  if (l.perm) p.workspace += n * std::max({H, q, I}) * cb;

  if (r.device.cuda) {
    p.reserve.cuda_context = kCudaContext;
    p.reserve.cublas_workspace = kCublasWorkspace;
    p.reserve.cuda_graphs = kCudaGraphs;
    p.reserve.nccl = r.tp > 1 ? kNccl : 0;
    std::vector<std::pair<int64_t, int64_t>> quantized_matrices;  // [out, in]
    if (quantized(s.weights)) quantized_matrices = {{q, H}, {kv, H}, {H, q}, {I, H}, {H, I}};
    if (r.lm_head_int8) quantized_matrices.push_back({d.vocab_local, H});
    for (const auto& [o, i] : quantized_matrices)
      p.reserve.dequant_scratch =
          std::max(p.reserve.dequant_scratch, dequant_scratch_bytes(o, i, cb));
    p.total = r.device.total_bytes;
  } else {
    p.reserve.host_process = kHostProcess;
    p.total = r.device.total_bytes / r.tp;  // CPU ranks share the host's memory
  }
  p.usable = int64_t(std::floor(double(p.total) * r.gpu_memory_utilization));
  p.kv_budget = p.usable - p.weights.total() - p.workspace - p.reserve.total();
  return p;
}

}  // namespace

void validate_plan_request(const PlanRequest& r) {
  require(r.gpu_memory_utilization > 0 && r.gpu_memory_utilization <= 1,
          "--gpu-memory-utilization must be in (0, 1], got " +
              std::to_string(r.gpu_memory_utilization));
  require(r.device.total_bytes > 0, "the device's memory size must be positive");
  require(r.max_num_batched_tokens >= 1, "--max-num-batched-tokens must be at least 1");
  require(r.max_num_seqs >= 1, "--max-num-seqs must be at least 1");
  require(r.block_size >= 1, "--block-size must be at least 1");
  require(r.max_model_len >= 0, "--max-model-len must not be negative");
  require(r.max_model_len <= r.model.max_position_embeddings,
          "--max-model-len " + std::to_string(r.max_model_len) + " exceeds the model's "
          "max_position_embeddings (" + std::to_string(r.model.max_position_embeddings) + ")");
  check_tp_compatible(r.model, r.tp);  // lists the valid sizes
  if (r.embeddings_host) check_host_embeddings(r.model, r.lm_head_int8);
}

Plan plan_fixed(const PlanRequest& r) {
  Plan p;
  p.request = r;
  const Resolved s = resolve(r, &p.notes);
  if (r.embeddings_host && !r.device.cuda)
    p.notes.push_back("--embeddings host: the CPU backend holds every weight in host memory");
  p.weights = s.weights;
  p.kv = s.kv;
  p.compute = s.compute;
  for (int rank = 0; rank < r.tp; ++rank) p.ranks.push_back(plan_rank(r, s, rank));
  p.kv_bytes_per_token = kv_bytes_per_token(r.model, p.ranks[0].kv_heads, s.kv);
  p.kv_block_bytes = r.block_size * p.kv_bytes_per_token;
  p.kv_blocks = INT64_MAX;
  for (RankPlan& rp : p.ranks) {
    rp.kv_blocks = rp.kv_budget > 0 ? rp.kv_budget / p.kv_block_bytes : 0;
    p.kv_blocks = std::min(p.kv_blocks, rp.kv_blocks);
  }
  const int64_t model_max = r.model.max_position_embeddings;
  if (r.max_model_len_auto)
    p.max_model_len = std::min(model_max, p.kv_blocks * r.block_size);
  else
    p.max_model_len = r.max_model_len > 0 ? r.max_model_len : model_max;
  const int64_t per_seq = ceil_div(p.max_model_len, r.block_size);
  p.fits = p.max_model_len > 0 && p.kv_blocks >= per_seq;
  p.max_concurrent_at_max_len = p.fits ? p.kv_blocks / per_seq : 0;
  return p;
}

int64_t Plan::weights_bytes_per_rank() const {
  int64_t most = 0;
  for (const RankPlan& r : ranks) most = std::max(most, r.weights.total());
  return most;
}

}  // namespace tessera
