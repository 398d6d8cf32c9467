// The CUDA backend: activations in the compute dtype (F16 or BF16; F32 on request), the
// residual stream and logits in F32, fp32 accumulation in every kernel, 2-D weights converted
// to the compute dtype at upload. Every op runs on one stream; download() waits for it.
// Each op checks dtypes and shapes like CpuBackend and calls its launcher in kernels/*.cu.
// Decode steps are captured as CUDA graphs (run_captured, runtime/cuda_step_graphs.cu); the
// batch index arrays are staged by CudaBatchUpload (runtime/cuda_batch_upload.cu).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/activation_cuda.h"
#include "kernels/attention_cuda.h"
#include "kernels/cuda_util.cuh"
#include "kernels/embedding_cuda.h"
#include "kernels/matmul_cuda.h"
#include "kernels/quant_matmul_cuda.h"
#include "kernels/rmsnorm_cuda.h"
#include "kernels/rope_cuda.h"
#include "runtime/backend.h"
#include "runtime/backend_cuda.h"
#include "runtime/cuda_batch_upload.h"
#include "runtime/cuda_step_graphs.h"
#include "runtime/error.h"
#include "runtime/backend_check.h"
#include "runtime/quant.h"

namespace tessera {
namespace {

using cuda::check;

#define EXPECT(ok, op, what) TESSERA_EXPECT_OP("cuda", ok, op, what)
void expect_dtype(const Tensor& t, DType want, const char* op) {
  EXPECT(t.dtype == want, op,
         std::string("expected ") + dtype_name(want) + ", got " + dtype_name(t.dtype));
}
void expect_cuda(const Tensor& t, const char* op) {
  EXPECT(t.device == Device::CUDA && t.data != nullptr, op, "tensor is not on the GPU");
}
bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// TESSERA_CUDA_GRAPHS=0 (or off/false) turns step capture off.
bool graphs_enabled_by_env() {
  const char* v = std::getenv("TESSERA_CUDA_GRAPHS");
  if (v == nullptr) return true;
  const std::string s(v);
  return !(s == "0" || s == "off" || s == "false" || s == "no");
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, DType compute)
      : compute_(compute), capture_(graphs_enabled_by_env()), graphs_(kMaxGraphs) {
    info_ = cuda_select_device(device);
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cublas(cublasCreate(&cublas_), "cublasCreate");
    check_cublas(cublasSetStream(cublas_, stream_), "cublasSetStream");
    // A fixed cuBLAS workspace: no allocations inside gemms, so steps can be graph-captured.
    workspace_ = cuda_device_alloc(kCublasWorkspace, "the cuBLAS workspace");
    check_cublas(cublasSetWorkspace(cublas_, workspace_.get(), kCublasWorkspace),
                 "cublasSetWorkspace");
    attention_memory_ = cuda_device_alloc(kAttentionScratch, "the attention split partials");
    attention_scratch_ = {static_cast<float*>(attention_memory_.get()),
                          int64_t(kAttentionScratch / sizeof(float)), info_.sm_count,
                          info_.major};
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    graphs_.clear();
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override {
    return "cuda:" + std::to_string(info_.device) + " (" + info_.name + ", " +
           dtype_name(compute_) + ")";
  }
  Device device() const override { return Device::CUDA; }
  DType compute_dtype() const override { return compute_; }

  Tensor alloc(DType dtype, std::initializer_list<int64_t> dims) override {
    Tensor t = make_tensor_view(nullptr, dtype, dims);
    t.storage = cuda_device_alloc(t.nbytes(), "a " + t.shape_str() + " " + dtype_name(dtype) +
                                                  " tensor");
    t.data = t.storage.get();
    t.device = Device::CUDA;
    return t;
  }

  // 2-D float tensors (weight matrices, embedding tables) become the compute dtype; 1-D
  // float tensors (norm weights, biases) F32; other dtypes are copied as they are.
  DType uploaded_dtype(const Tensor& host) const {
    if (!is_float(host.dtype)) return host.dtype;
    return host.ndim >= 2 ? compute_ : DType::F32;
  }

  Tensor upload(const Tensor& host) override {
    EXPECT(host.device == Device::CPU, "upload", "source is not a host tensor");
    const DType want = uploaded_dtype(host);
    Tensor out = alloc_like(host, want);
    if (host.numel() == 0) return out;
    // Copies on stream_ (a plain cudaMemcpy from pageable memory may still be in flight when
    // it returns, and stream_ does not wait for the legacy default stream).
    if (want == host.dtype) {
      check(cudaMemcpyAsync(out.data, host.data, host.nbytes(), cudaMemcpyHostToDevice, stream_),
            "upload copy");
      check(cudaStreamSynchronize(stream_), "upload copy");
      return out;
    }
    std::shared_ptr<void> raw = cuda_device_alloc(host.nbytes(), "staging of an upload");
    check(cudaMemcpyAsync(raw.get(), host.data, host.nbytes(), cudaMemcpyHostToDevice, stream_),
          "upload copy");
    convert_cuda(raw.get(), host.dtype, out.data, want, host.numel(), stream_);
    check(cudaStreamSynchronize(stream_), "upload convert");
    return out;
  }

  Tensor upload_host_resident(const Tensor& host) override {
    EXPECT(host.device == Device::CPU, "upload_host_resident", "source is not a host tensor");
    return cuda_host_resident_copy(host, uploaded_dtype(host),
                                   "a " + host.shape_str() + " tensor kept in host memory");
  }

  // Quantized weights are copied byte for byte (no dtype conversion); the dequantization
  // scratch grows to the largest quantized layer's need (at load, before any step).
  LinearWeight upload_linear(const LinearWeight& host) override {
    if (host.format == WeightFormat::Dense) return Backend::upload_linear(host);
    LinearWeight w = host;
    w.weight = cuda_copy_to_device(host.weight);
    w.scales = cuda_copy_to_device(host.scales);
    if (!host.zeros.empty()) w.zeros = cuda_copy_to_device(host.zeros);
    if (!host.input_perm.empty()) w.input_perm = cuda_copy_to_device(host.input_perm);
    if (!host.bias.empty()) w.bias = upload(host.bias);
    const size_t need = quant_scratch_bytes(quant_matrix(w), compute_);
    if (need > scratch_bytes_) {
      check(cudaStreamSynchronize(stream_), "scratch realloc");
      graphs_.clear();
      scratch_ = cuda_device_alloc(need, "the dequantization scratch");
      scratch_bytes_ = need;
    }
    return w;
  }

  void download(const Tensor& src, void* host_dst) override {
    expect_cuda(src, "download");
    check(cudaMemcpyAsync(host_dst, src.data, src.nbytes(), cudaMemcpyDeviceToHost, stream_),
          "download copy");
    check(cudaStreamSynchronize(stream_), "download (a kernel of this step failed)");
  }

  void upload_into(const void* host_src, Tensor& dst) override {
    expect_cuda(dst, "upload_into");
    check(cudaMemcpyAsync(dst.data, host_src, dst.nbytes(), cudaMemcpyHostToDevice, stream_),
          "upload_into copy");
    check(cudaStreamSynchronize(stream_), "upload_into copy");
  }
  void* native_stream() override { return stream_; }
  void bind_thread() override { check(cudaSetDevice(info_.device), "cudaSetDevice"); }

  // The step graphs read the batch buffer: dropped when it is reallocated.
  BatchTensors upload_batch(const Batch& b) override {
    return batch_.upload(b, stream_, [this] { graphs_.clear(); });
  }

  // device_inv_freq: F32 [2, head_dim / 2], hi and lo parts of the double frequencies (at
  // position 32768 a float frequency alone would be off by ~1e-3 rad).
  void prepare_rope(RopeTable& table) override {
    const int64_t half = int64_t(table.inv_freq.size());
    Tensor host = host_tensor(DType::F32, {2, half});
    for (int64_t i = 0; i < half; ++i) {
      const float hi = float(table.inv_freq[size_t(i)]);
      host.ptr<float>()[i] = hi;
      host.ptr<float>()[half + i] = float(table.inv_freq[size_t(i)] - double(hi));
    }
    table.device_inv_freq = cuda_copy_to_device(host);
  }

  void synchronize() override { check(cudaStreamSynchronize(stream_), "synchronize"); }

  // The key gains the layout of the last upload_batch (array sizes and the padded block-table
  // stride fix every index array's address in the batch buffer, and that buffer itself).
  void run_captured(const StepKey& key, const std::function<void()>& ops) override {
    if (!capture_) return graphs_.run_eager(ops);
    StepKey full = key;
    full.words.insert(full.words.end(), batch_.layout(),
                      batch_.layout() + CudaBatchUpload::kLayoutWords);
    graphs_.run(stream_, full, ops);
  }
  bool set_step_capture(bool enabled) override {
    capture_ = enabled;
    return true;
  }
  bool step_capture() const override { return capture_; }
  StepCaptureStats step_capture_stats() const override { return graphs_.stats(); }

  void embedding(const Tensor& table, int64_t vocab_begin, const BatchTensors& b,
                 Tensor& out) override {
    expect_dtype(out, DType::F32, "embedding");
    expect_cuda(table, "embedding");
    EXPECT(out.dim(0) == b.host->num_tokens() && out.row_size() == table.dim(1), "embedding",
           "out shape " + out.shape_str());
    embedding_cuda(table.data, table.dtype, table.dim(0), table.dim(1), vocab_begin,
                   b.token_ids.ptr<int32_t>(), b.host->num_tokens(), out.ptr<float>(), stream_);
  }

  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    expect_dtype(x, DType::F32, "rmsnorm");
    expect_dtype(w, DType::F32, "rmsnorm");
    EXPECT(x.numel() == out.numel() && x.dim(-1) == w.numel(), "rmsnorm", "shape mismatch");
    rmsnorm_cuda(x.ptr<float>(), w.ptr<float>(), eps, x.dim(0), x.dim(-1), out.data, out.dtype,
                 stream_);
  }

  void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                   Tensor& out) override {
    expect_dtype(residual, DType::F32, "add_rmsnorm");
    expect_dtype(w, DType::F32, "add_rmsnorm");
    EXPECT(residual.numel() == delta.numel() && residual.numel() == out.numel() &&
               residual.dim(-1) == w.numel(),
           "add_rmsnorm", "shape mismatch");
    add_rmsnorm_cuda(residual.ptr<float>(), delta.data, delta.dtype, w.ptr<float>(), eps,
                     residual.dim(0), residual.dim(-1), out.data, out.dtype, stream_);
  }

  void linear(const Tensor& x, const LinearWeight& w, Tensor& out) override {
    const int64_t M = x.dim(0), K = x.row_size(), N = w.out_features();
    EXPECT(K == w.in_features(), "linear",
           "x " + x.shape_str() + " vs weight " + w.weight.shape_str());
    EXPECT(out.dim(0) == M && out.row_size() == N, "linear", "out " + out.shape_str());
    EXPECT(w.bias.empty() || w.bias.dtype == DType::F32, "linear", "bias must be F32");
    const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>();
    if (w.format != WeightFormat::Dense)
      return quant_linear_cuda(cublas_, x.data, x.dtype, M, quant_matrix(w), bias, out.data,
                               out.dtype, scratch_.get(), scratch_bytes_, stream_);
    linear_cuda(cublas_, x.data, x.dtype, M, K, w.weight.data, w.weight.dtype, N, bias,
                out.data, out.dtype, stream_);
  }

  void rope(Tensor& q, Tensor& k, const RopeTable& table, const BatchTensors& b) override {
    EXPECT(!table.device_inv_freq.empty(), "rope", "prepare_rope was not called");
    const int64_t n = b.host->num_tokens();
    EXPECT(q.dim(0) == n && k.dim(0) == n && q.dtype == k.dtype, "rope", "q/k mismatch");
    rope_cuda(q.data, q.dtype, n, q.dim(1), q.dim(2), b.positions.ptr<int32_t>(),
              table.device_inv_freq.ptr<float>(), stream_);
    rope_cuda(k.data, k.dtype, n, k.dim(1), k.dim(2), b.positions.ptr<int32_t>(),
              table.device_inv_freq.ptr<float>(), stream_);
  }

  void kv_write(const Tensor& k, const Tensor& v, KvLayer& cache, int64_t block_size,
                const BatchTensors& b) override {
    expect_dtype(k, io_dtype(cache), "kv_write");
    expect_dtype(v, io_dtype(cache), "kv_write");
    EXPECT(k.row_size() == cache.k.dim(1) * cache.k.dim(3) && v.numel() == k.numel() &&
               k.dim(0) == b.host->num_tokens() && cache.k.dim(2) == block_size,
           "kv_write", "k " + k.shape_str() + " vs cache " + cache.k.shape_str() + ", " +
                           std::to_string(b.host->num_tokens()) + " tokens, block size " +
                           std::to_string(block_size));
    kv_write_cuda(k.data, v.data, k.dtype, paged_batch(b), paged(cache, block_size), stream_);
  }

  void attention(const Tensor& q, const KvLayer& cache, int64_t block_size,
                 const AttentionParams& p, const BatchTensors& b, Tensor& out) override {
    expect_dtype(q, io_dtype(cache), "attention");
    expect_dtype(out, io_dtype(cache), "attention");
    EXPECT(cache.k.dim(1) == p.num_kv_heads && cache.k.dim(3) == p.head_dim &&
               cache.k.dim(2) == block_size, "attention", "cache shape " + cache.k.shape_str());
    // Kernels index q and out by tokens x heads x head_dim: a mismatch would run off them.
    EXPECT(q.numel() == b.host->num_tokens() * p.num_heads * p.head_dim &&
               out.numel() == q.numel(), "attention",
           "q " + q.shape_str() + ", out " + out.shape_str() + " for " +
               std::to_string(b.host->num_tokens()) + " tokens x " +
               std::to_string(p.num_heads) + " heads");
    paged_attention_cuda(q.data, q.dtype, p.num_heads, paged(cache, block_size), paged_batch(b),
                         p.scale, p.sliding_window, attention_scratch_, out.data, stream_);
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    EXPECT(gate.numel() == up.numel() && gate.numel() == out.numel(), "silu_mul",
           "shape mismatch");
    EXPECT(gate.dtype == up.dtype && gate.dtype == out.dtype, "silu_mul", "dtype mismatch");
    silu_mul_cuda(gate.data, up.data, gate.numel(), out.data, gate.dtype, stream_);
  }

  void gather_rows(const Tensor& x, const Tensor& indices, Tensor& out) override {
    expect_dtype(indices, DType::I32, "gather_rows");
    expect_cuda(indices, "gather_rows");
    EXPECT(x.dtype == out.dtype && x.row_size() == out.row_size() &&
               out.dim(0) >= indices.numel(),
           "gather_rows", "x " + x.shape_str() + " vs out " + out.shape_str());
    gather_rows_cuda(x.data, x.row_size() * int64_t(dtype_size(x.dtype)),
                     indices.ptr<int32_t>(), indices.numel(), out.data, stream_);
  }

  // Indices are not range-checked here (they live on the GPU); the CPU backend checks them.
  void gather_columns(const Tensor& x, const Tensor& indices, Tensor& out) override {
    expect_dtype(indices, DType::I32, "gather_columns");
    expect_cuda(indices, "gather_columns");
    expect_cuda(x, "gather_columns");
    expect_cuda(out, "gather_columns");
    EXPECT(is_float(x.dtype) && x.ndim >= 2 && out.ndim >= 2 && out.dtype == x.dtype &&
               out.dim(0) == x.dim(0) && out.row_size() == indices.numel(),
           "gather_columns", "x " + x.shape_str() + " indices " + indices.shape_str() +
                                 " vs out " + out.shape_str());
    gather_columns_cuda(x.data, int64_t(dtype_size(x.dtype)), x.dim(0), x.row_size(),
                        indices.ptr<int32_t>(), indices.numel(), out.data, stream_);
  }

 private:
  static constexpr size_t kCublasWorkspace = size_t(32) << 20;
  // Split-K decode attention's partials: plan_tiles keeps them within it (the plan counts it
  // in its CUDA graphs reserve, runtime/memory_plan.cpp).
  static constexpr size_t kAttentionScratch = size_t(4) << 20;
  static constexpr size_t kMaxGraphs = 64;

  Tensor alloc_like(const Tensor& host, DType dtype) {
    Tensor t = host;
    t.dtype = dtype;
    t.storage = cuda_device_alloc(t.nbytes(), "a " + host.shape_str() + " " +
                                                  dtype_name(dtype) + " weight");
    t.data = t.storage.get();
    t.device = Device::CUDA;
    return t;
  }
  static PagedKvCuda paged(const KvLayer& l, int64_t block_size) {
    expect_cuda(l.k, "kv cache");
    return PagedKvCuda{l.k.data, l.v.data, l.k.dtype, l.k.dim(1), block_size, l.k.dim(3),
                       l.k_scale.ptr<float>(), l.v_scale.ptr<float>()};  // scales: I8 only
  }
  // The dtype of k, v, q and out next to this cache: an I8 cache's is the compute dtype.
  DType io_dtype(const KvLayer& l) const { return l.k.dtype == DType::I8 ? compute_ : l.k.dtype; }
  static PagedBatchCuda paged_batch(const BatchTensors& b) {
    PagedBatchCuda p;
    p.positions = b.positions.ptr<int32_t>();
    p.slot_mapping = b.slot_mapping.ptr<int32_t>();
    p.seq_begin = b.seq_begin.ptr<int32_t>();
    p.block_tables = b.block_tables.ptr<int32_t>();
    p.num_tokens = b.host->num_tokens();
    p.num_seqs = b.host->num_seqs();
    // upload_batch lays the tables out [num_seqs, padded stride].
    p.max_blocks_per_seq = b.block_tables.ndim == 2 ? b.block_tables.dim(1)
                                                    : b.host->max_blocks_per_seq;
    return p;
  }

  DType compute_;
  CudaDeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::shared_ptr<void> workspace_;
  std::shared_ptr<void> attention_memory_;
  AttentionScratchCuda attention_scratch_;  // views attention_memory_
  std::shared_ptr<void> scratch_;  // dequantized weight rows for prefill (quant_linear_cuda)
  size_t scratch_bytes_ = 0;
  bool capture_;
  CudaStepGraphs graphs_;
  CudaBatchUpload batch_;  // the batch index arrays (upload_batch)
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, DType compute_dtype) {
  if (!is_float(compute_dtype))
    throw UserError(std::string("CUDA compute dtype must be float16, bfloat16 or float32, not ") +
                    dtype_name(compute_dtype));
  const CudaDeviceInfo info = cuda_select_device(device);
  if (compute_dtype == DType::BF16 && info.major < 8) {
    std::fprintf(stderr, "notice: %s (sm_%d%d) has no bf16 math; running in float16\n",
                 info.name.c_str(), info.major, info.minor);
    compute_dtype = DType::F16;
  }
  return std::make_unique<CudaBackend>(device, compute_dtype);
}

#undef EXPECT

}  // namespace tessera
