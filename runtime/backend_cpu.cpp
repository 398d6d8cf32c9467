// The CPU backend: F32 activations, an F32 or I8 KV cache, weights read in place in their
// stored dtype. Each op checks shapes and calls its kernel in kernels/*_cpu.cpp.
#include <omp.h>

#include <cstring>
#include <stdexcept>

#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "runtime/backend.h"
#include "runtime/backend_check.h"
#include "runtime/quant.h"

namespace tessera {
namespace {

#define EXPECT(ok, op, what) TESSERA_EXPECT_OP("cpu", ok, op, what)

void expect_f32(const Tensor& t, const char* op) {
  EXPECT(t.dtype == DType::F32, op, "expected F32, got " + std::string(dtype_name(t.dtype)));
}

PagedKv paged(const KvLayer& l, int64_t block_size) {
  EXPECT(l.k.dtype == DType::F32 || l.k.dtype == DType::I8, "kv cache",
         std::string("expected F32 or I8, got ") + dtype_name(l.k.dtype));
  PagedKv c{l.k.data, l.v.data, l.k.dim(1), block_size, l.k.dim(3), l.k.dtype};
  c.k_scale = l.k_scale.ptr<float>();  // null unless I8
  c.v_scale = l.v_scale.ptr<float>();
  return c;
}

Tensor i32_view(const std::vector<int32_t>& v) {
  return make_tensor_view(const_cast<int32_t*>(v.data()), DType::I32, {int64_t(v.size())});
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, CpuPrecision precision) : precision_(precision) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  std::string name() const override {
    switch (precision_) {
      case CpuPrecision::Fast: return "cpu (fast: bf16 / int8 activations)";
      case CpuPrecision::QuantizedFast: return "cpu (int8 activations for int8/int4 weights)";
      default: return "cpu";
    }
  }
  Device device() const override { return Device::CPU; }
  DType compute_dtype() const override { return DType::F32; }

  Tensor alloc(DType dtype, std::initializer_list<int64_t> dims) override {
    return host_tensor(dtype, dims);
  }
  Tensor upload(const Tensor& host) override { return host; }
  void download(const Tensor& src, void* dst) override {
    std::memcpy(dst, src.data, src.nbytes());
  }
  void upload_into(const void* src, Tensor& dst) override {
    if (dst.data != src) std::memcpy(dst.data, src, dst.nbytes());
  }
  BatchTensors upload_batch(const Batch& b) override {
    BatchTensors t;
    t.host = &b;
    t.token_ids = i32_view(b.token_ids);
    t.positions = i32_view(b.positions);
    t.slot_mapping = i32_view(b.slot_mapping);
    t.seq_begin = i32_view(b.seq_begin);
    t.context_lens = i32_view(b.context_lens);
    t.block_tables = i32_view(b.block_tables);
    t.logit_indices = i32_view(b.logit_indices);
    return t;
  }
  void prepare_rope(RopeTable&) override {}

  void embedding(const Tensor& table, int64_t vocab_begin, const BatchTensors& b,
                 Tensor& out) override {
    expect_f32(out, "embedding");
    EXPECT(out.dim(0) == b.host->num_tokens() && out.dim(1) == table.dim(1), "embedding",
           "out shape " + out.shape_str());
    embedding_cpu(table.data, table.dtype, table.dim(0), table.dim(1), vocab_begin,
                  b.host->token_ids.data(), b.host->num_tokens(), out.ptr<float>());
  }

  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override {
    expect_f32(x, "rmsnorm");
    expect_f32(w, "rmsnorm");
    expect_f32(out, "rmsnorm");
    EXPECT(x.numel() == out.numel() && x.dim(-1) == w.numel(), "rmsnorm", "shape mismatch");
    rmsnorm_cpu(x.ptr<float>(), w.ptr<float>(), eps, x.dim(0), x.dim(-1), out.ptr<float>());
  }

  void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                   Tensor& out) override {
    expect_f32(residual, "add_rmsnorm");
    expect_f32(delta, "add_rmsnorm");
    EXPECT(residual.numel() == delta.numel() && residual.numel() == out.numel(),
           "add_rmsnorm", "shape mismatch");
    add_rmsnorm_cpu(residual.ptr<float>(), delta.ptr<float>(), w.ptr<float>(), eps,
                    residual.dim(0), residual.dim(-1), out.ptr<float>());
  }

  void linear(const Tensor& x, const LinearWeight& w, Tensor& out) override {
    expect_f32(x, "linear");
    expect_f32(out, "linear");
    const int64_t M = x.dim(0), K = x.row_size(), N = w.out_features();
    EXPECT(K == w.in_features(), "linear",
           "x " + x.shape_str() + " vs weight " + w.weight.shape_str());
    EXPECT(out.dim(0) == M && out.row_size() == N, "linear", "out " + out.shape_str());
    const float* bias = w.bias.empty() ? nullptr : w.bias.ptr<float>();
    if (w.format != WeightFormat::Dense && precision_ != CpuPrecision::Exact)  // int8 x, VNNI
      return quant_matmul_cpu_q8(x.ptr<float>(), M, quant_matrix(w), bias, out.ptr<float>());
    if (w.format != WeightFormat::Dense)
      return quant_matmul_cpu(x.ptr<float>(), M, quant_matrix(w), bias, out.ptr<float>());
    if (precision_ == CpuPrecision::Fast)
      matmul_cpu_bf16_activations(x.ptr<float>(), M, K, w.weight.data, w.weight.dtype, N, bias,
                                  out.ptr<float>());
    else
      matmul_cpu(x.ptr<float>(), M, K, w.weight.data, w.weight.dtype, N, bias, out.ptr<float>());
  }

  void rope(Tensor& q, Tensor& k, const RopeTable& table, const BatchTensors& b) override {
    expect_f32(q, "rope");
    expect_f32(k, "rope");
    const int64_t n = b.host->num_tokens();
    rope_cpu(q.ptr<float>(), n, q.dim(1), q.dim(2), b.host->positions.data(),
             table.inv_freq.data());
    rope_cpu(k.ptr<float>(), n, k.dim(1), k.dim(2), b.host->positions.data(),
             table.inv_freq.data());
  }

  void kv_write(const Tensor& k, const Tensor& v, KvLayer& cache, int64_t block_size,
                const BatchTensors& b) override {
    expect_f32(k, "kv_write");
    expect_f32(v, "kv_write");
    kv_write_cpu(k.ptr<float>(), v.ptr<float>(), b.host->num_tokens(),
                 b.host->slot_mapping.data(), paged(cache, block_size));
  }

  void attention(const Tensor& q, const KvLayer& cache, int64_t block_size,
                 const AttentionParams& p, const BatchTensors& b, Tensor& out) override {
    expect_f32(q, "attention");
    expect_f32(out, "attention");
    EXPECT(cache.k.dim(1) == p.num_kv_heads && cache.k.dim(3) == p.head_dim, "attention",
           "cache shape " + cache.k.shape_str());
    paged_attention_cpu(q.ptr<float>(), p.num_heads, paged(cache, block_size), *b.host,
                        p.scale, p.sliding_window, out.ptr<float>());
  }

  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    EXPECT(gate.numel() == up.numel() && gate.numel() == out.numel(), "silu_mul",
           "shape mismatch");
    silu_mul_cpu(gate.ptr<float>(), up.ptr<float>(), gate.numel(), out.ptr<float>());
  }

  void gather_rows(const Tensor& x, const Tensor& indices, Tensor& out) override {
    const size_t row = size_t(x.row_size()) * dtype_size(x.dtype);
    const int32_t* idx = indices.ptr<int32_t>();
    for (int64_t i = 0; i < indices.numel(); ++i) {
      EXPECT(idx[i] >= 0 && idx[i] < x.dim(0), "gather_rows", "index out of range");
      std::memcpy(static_cast<char*>(out.data) + size_t(i) * row,
                  static_cast<const char*>(x.data) + size_t(idx[i]) * row, row);
    }
  }

  void gather_columns(const Tensor& x, const Tensor& indices, Tensor& out) override {
    EXPECT(indices.dtype == DType::I32 && indices.ndim == 1, "gather_columns",
           "indices must be I32 [J], got " + std::string(dtype_name(indices.dtype)) + " " +
               indices.shape_str());
    EXPECT(x.dtype == DType::F32 || x.dtype == DType::F16 || x.dtype == DType::BF16,
           "gather_columns", std::string("unsupported dtype ") + dtype_name(x.dtype));
    EXPECT(x.ndim >= 2 && out.ndim >= 2, "gather_columns", "x and out must be [rows, cols]");
    const int64_t M = x.dim(0), K = x.row_size(), J = indices.numel();
    EXPECT(out.dtype == x.dtype && out.dim(0) == M && out.row_size() == J, "gather_columns",
           "x " + x.shape_str() + " indices " + indices.shape_str() + " vs out " +
               out.shape_str());
    const int32_t* idx = indices.ptr<int32_t>();
    for (int64_t j = 0; j < J; ++j)
      EXPECT(idx[j] >= -1 && idx[j] < K, "gather_columns",
             "index " + std::to_string(idx[j]) + " out of range for " + std::to_string(K) +
                 " columns");
    gather_columns_cpu(x.data, int64_t(dtype_size(x.dtype)), M, K, idx, J, out.data);
  }

 private:
  CpuPrecision precision_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads, CpuPrecision precision) {
  return std::make_unique<CpuBackend>(num_threads, precision);
}

#undef EXPECT

}  // namespace tessera
