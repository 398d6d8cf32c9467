// Backend: the op interface Model::forward is written against. The CPU and CUDA backends
// implement it; the model never touches memory or kernels directly. All activations are
// [tokens, features] row-major; the residual stream is always F32.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/batch.h"
#include "runtime/kv_cache.h"
#include "runtime/tensor.h"

namespace tessera {

// How a linear weight is stored (runtime/quant.h makes the quantized ones, w' = dequantized):
// Dense: the checkpoint's dtype (F32/F16/BF16), [out, in].
// Int8:  I8 [out, in] + F32 scales [out]; w' = q * s (per output row, symmetric).
// Int4:  U8 [out, in / 2], two per byte: element 2j in the low nibble of byte j, 2j + 1 in
//        the high nibble; F32 scales and I8 zero points [out, ceil(in / group_size)];
//        w' = (q - z) * s, group g covering inputs [g * group_size, (g + 1) * group_size).
enum class WeightFormat : uint8_t { Dense, Int8, Int4 };

// A linear layer's weight as the backend stores it.
struct LinearWeight {
  Tensor weight;  // [out_features_local, in_features_local] (Int4: [out, in / 2] packed)
  Tensor bias;    // F32 [out_features_local], or empty
  Tensor scales;  // F32: Int8 [out]; Int4 [out, groups]; empty when Dense
  Tensor zeros;   // I8 [out, groups] (Int4 only)
  WeightFormat format = WeightFormat::Dense;
  int64_t group_size = 0;    // Int4: inputs per scale (128)
  // I32 [in_features]: packed input j multiplies x[:, input_perm[j]] (-1: padding, x = 0).
  // Empty: the identity. GPTQ act-order checkpoints (runtime/prequantized.h) quantized their
  // inputs in this order; the model gathers x into it (Backend::gather_columns) first.
  Tensor input_perm;
  bool partial_sum = false;  // row-split under tensor parallel: output must be all-reduced
  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const {
    return format == WeightFormat::Int4 ? 2 * weight.dim(1) : weight.dim(1);
  }
};

// The batch's index arrays where the backend's kernels can read them. block_tables may be
// 2-D [num_seqs, stride] with stride >= host->max_blocks_per_seq (CUDA pads it, -1 filled,
// so that decode steps of growing contexts share a captured graph).
struct BatchTensors {
  const Batch* host = nullptr;
  Tensor token_ids, positions, slot_mapping, seq_begin, context_lens, block_tables,
      logit_indices;  // I32, shapes as in Batch
};

// Rotary embedding frequencies (HF rotate-half convention), scaling already applied.
struct RopeTable {
  std::vector<double> inv_freq;  // [head_dim / 2]
  Tensor device_inv_freq;        // F32 [head_dim / 2] on the backend (set by the backend)
};

struct AttentionParams {
  int64_t num_heads = 0;     // this rank's query heads
  int64_t num_kv_heads = 0;  // this rank's kv heads
  int64_t head_dim = 0;
  float scale = 0.0f;        // softmax scale, usually 1/sqrt(head_dim)
  int64_t sliding_window = 0;  // 0: unlimited; else keys at positions > q_pos - W only
};

// Identifies a captured step (Backend::run_captured): every value the step's launches depend
// on that the backend cannot see itself: buffer generations, shapes, the KV cache's
// pointers. The backend adds the layout of its last upload_batch.
struct StepKey {
  std::vector<int64_t> words;
  bool operator==(const StepKey&) const = default;
};

// Counters of Backend::run_captured (all zero on a backend that does not capture).
struct StepCaptureStats {
  int64_t eager = 0;      // steps run without a graph (first sighting of a key, or disabled)
  int64_t captures = 0;   // graphs captured (each also launched once)
  int64_t replays = 0;    // steps run by relaunching a captured graph
  int64_t failures = 0;   // captures that failed (the step then ran eagerly)
  int64_t evictions = 0;  // graphs dropped to stay within the cache's capacity
  int64_t cached = 0;     // graphs held now
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // The dtype of activations between ops (F32 on the CPU).
  virtual DType compute_dtype() const = 0;

  virtual Tensor alloc(DType dtype, std::initializer_list<int64_t> dims) = 0;
  // Makes a host tensor usable by this backend (CPU: shares it; CUDA: copies).
  virtual Tensor upload(const Tensor& host) = 0;
  // Makes a host linear weight usable by this backend: dense weights through upload() (CUDA
  // converts them to the compute dtype), quantized ones byte for byte.
  virtual LinearWeight upload_linear(const LinearWeight& host) {
    LinearWeight w = host;
    w.weight = upload(host.weight);
    if (!host.bias.empty()) w.bias = upload(host.bias);
    if (!host.scales.empty()) w.scales = upload(host.scales);
    if (!host.zeros.empty()) w.zeros = upload(host.zeros);
    if (!host.input_perm.empty()) w.input_perm = upload(host.input_perm);
    return w;
  }
  // Makes a host tensor readable by this backend's kernels while it stays in host memory
  // (--embeddings host): CUDA keeps it, converted as upload() would, in pinned memory mapped
  // into the GPU's address space, read over PCIe, taking no device memory; the CPU shares it.
  virtual Tensor upload_host_resident(const Tensor& host) { return upload(host); }
  // Copies a backend tensor into host memory of src.nbytes() bytes.
  virtual void download(const Tensor& src, void* host_dst) = 0;
  // Copies dst.nbytes() bytes of host memory into an existing backend tensor (the host-staged
  // all-reduce writes its result back with this).
  virtual void upload_into(const void* host_src, Tensor& dst) = 0;
  // The CUDA stream every op of this backend runs on (nullptr on the CPU): NCCL collectives
  // are enqueued on it so they stay ordered with the kernels around them.
  virtual void* native_stream() { return nullptr; }
  // Makes the calling thread use this backend's device (CUDA: cudaSetDevice). A thread other
  // than the one that created the backend (the engine's) calls it before its first op.
  virtual void bind_thread() {}
  virtual BatchTensors upload_batch(const Batch& batch) = 0;
  virtual void prepare_rope(RopeTable& table) = 0;
  virtual void synchronize() {}

  // Runs `ops`: the device-side part of one step. The CPU backend just calls ops(). The CUDA
  // backend captures it into a CUDA graph the second time it sees a key (the first run is
  // eager: a warm-up) and replays that graph for the same key afterwards, without calling
  // ops. So ops must: read batch data only from the last upload_batch's tensors; allocate
  // nothing, synchronize nothing and make no decision on values that the key does not fix;
  // and leave no host-side result (output buffers are chosen before the call). A key must
  // change whenever a pointer or launch parameter used by ops does.
  virtual void run_captured(const StepKey& key, const std::function<void()>& ops) {
    (void)key;
    ops();
  }
  // Turns capture on or off (TESSERA_CUDA_GRAPHS=0 starts it off). Returns whether this
  // backend can capture at all.
  virtual bool set_step_capture(bool enabled) {
    (void)enabled;
    return false;
  }
  virtual bool step_capture() const { return false; }
  virtual StepCaptureStats step_capture_stats() const { return {}; }

  // out[i, :] = table[ids[i] - vocab_begin, :] as F32 when the id is in this rank's range
  // [vocab_begin, vocab_begin + table rows), else zeros. table: [vocab_local, hidden].
  virtual void embedding(const Tensor& table, int64_t vocab_begin, const BatchTensors& b,
                         Tensor& out) = 0;
  // out = rmsnorm(x) * weight. x: F32 [n, h]; weight: F32 [h]; out: compute dtype [n, h].
  virtual void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // residual += delta; out = rmsnorm(residual) * weight. residual F32, delta compute dtype.
  virtual void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& weight,
                           float eps, Tensor& out) = 0;
  // out[M, N] = x[M, K] @ w'[N, K]^T (+ bias), w' the weight as stored or dequantized (any
  // WeightFormat). out may be F32 or the compute dtype.
  virtual void linear(const Tensor& x, const LinearWeight& w, Tensor& out) = 0;
  // In place: rotates q [n, heads, head_dim] and k [n, kv_heads, head_dim] by positions.
  virtual void rope(Tensor& q, Tensor& k, const RopeTable& table, const BatchTensors& b) = 0;
  // Writes each token's k, v [n, kv_heads, head_dim] into the cache at its slot.
  virtual void kv_write(const Tensor& k, const Tensor& v, KvLayer& cache, int64_t block_size,
                        const BatchTensors& b) = 0;
  // Causal attention of q [n, heads, head_dim] over each sequence's cached K/V (the new
  // tokens already written). out: [n, heads * head_dim].
  virtual void attention(const Tensor& q, const KvLayer& cache, int64_t block_size,
                         const AttentionParams& p, const BatchTensors& b, Tensor& out) = 0;
  // out = silu(gate) * up, all [n, inter].
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out[i, :] = x[indices[i], :] (F32 or compute dtype).
  virtual void gather_rows(const Tensor& x, const Tensor& indices, Tensor& out) = 0;
  // out[m, j] = x[m, indices[j]], or 0 where indices[j] == -1. x: [M, K]; indices: I32 [J]
  // (each -1 or in [0, K)); out: [M, J], x's dtype (F32 or compute dtype).
  virtual void gather_columns(const Tensor& x, const Tensor& indices, Tensor& out) = 0;
};

// CPU precision modes. Exact: F32 activations everywhere (the goldens' mode). Fast: the
// inputs of linear layers are rounded to bf16 and multiplied with AVX512-BF16 dot products
// (F32 accumulation, F32 residual stream and attention), like llama.cpp's bf16 path; int8 /
// int4 weights meet int8 activations (per block of 128, AVX512-VNNI), like llama.cpp's Q8.
// QuantizedFast (`--precision auto`, the launcher's default): Fast for int8 / int4 weights,
// Exact for 16/32-bit ones (quantized weights are already approximate; the int8 activations
// add ~0.04% perplexity and double their decode speed).
enum class CpuPrecision { Exact, Fast, QuantizedFast };

std::unique_ptr<Backend> make_cpu_backend(int num_threads,
                                          CpuPrecision precision = CpuPrecision::Exact);

// The CUDA backend on GPU `device` computing in `compute_dtype` (F16, BF16 or F32; BF16 on a
// GPU without bf16 math (sm_75) becomes F16 with a notice on stderr). UserError
// "no CUDA device: ..." when there is none. Defined only in builds with TESSERA_HAVE_CUDA.
std::unique_ptr<Backend> make_cuda_backend(int device, DType compute_dtype);

}  // namespace tessera
