// Every CUDA backend op against its CPU twin (the CPU backend) on fresh random inputs, in
// fp16 and bf16, with outputs poisoned (NaN) before each run; and a registry check, run in
// every build, that each Backend op has its CudaOps test. Attention-side ops (rope, kv_write,
// attention) are in cuda_attention_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kernels/sampling.h"
#include "runtime/backend_cuda.h"
#include "tests/cuda_test_util.h"

namespace tessera::test {
namespace {

// The ops Model::forward uses (Backend's virtual ops; linear once per weight format, kv_write
// and attention once per KV cache kind) plus sampling. The quantized linears are in
// cuda_quant_test.cpp, the int8 KV cache's ops in cuda_attention_test.cpp.
const char* kCudaOps[] = {"embedding", "rmsnorm",     "add_rmsnorm", "linear",
                          "rope",      "kv_write",    "attention",   "silu_mul",
                          "gather_rows", "gather_columns", "sampling", "linear_int8",
                          "linear_int4", "kv_write_int8", "attention_int8"};

TEST(CudaOpsRegistry, EveryCudaOpHasItsCpuTwinTest) {
  std::set<std::string> registered;
  const ::testing::UnitTest& ut = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < ut.total_test_suite_count(); ++i) {
    const ::testing::TestSuite& s = *ut.GetTestSuite(i);
    if (std::string(s.name()) != "CudaOps") continue;
    for (int j = 0; j < s.total_test_count(); ++j) registered.insert(s.GetTestInfo(j)->name());
  }
  for (const char* op : kCudaOps)
    EXPECT_TRUE(registered.count(op)) << "CUDA op " << op << " has no CudaOps." << op << " test";
}

const int64_t kTokens[] = {1, 17, 1000};

Batch ids_batch(const std::vector<int32_t>& ids) {
  Batch b;
  b.token_ids = ids;
  return b;
}

TESSERA_CUDA_OP_TEST(embedding) {
  std::mt19937 rng(1);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  const int64_t V = 1000, H = 900, begin = 100;  // this rank holds ids [100, 1100)
  const auto table = round_to(random_values(size_t(V * H), rng), dt);
  Tensor gt = gpu.upload(host_from(table, dt, {V, H}));
  Tensor ct = host_from(table, DType::F32, {V, H});
  // --embeddings host: the table in pinned host memory, converted on the host, read over PCIe.
  Tensor ht = gpu.upload_host_resident(host_from(table, DType::F32, {V, H}));
  EXPECT_EQ(ht.dtype, dt);
  EXPECT_TRUE(cuda_pointer_is_host_memory(ht.data));
  EXPECT_FALSE(cuda_pointer_is_host_memory(gt.data));
  for (int64_t n : kTokens) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& id : ids) id = int32_t(rng() % 1200);  // some outside the range: zeros
    const Batch b = ids_batch(ids);
    Tensor want = cpu.alloc(DType::F32, {n, H}), got = gpu_poisoned(gpu, DType::F32, {n, H});
    cpu.embedding(ct, begin, cpu.upload_batch(b), want);
    gpu.embedding(gt, begin, gpu.upload_batch(b), got);
    EXPECT_EQ(rel_error(values_of(gpu, got), values_of(cpu, want)), 0.0) << "n " << n;
    Tensor from_host = gpu_poisoned(gpu, DType::F32, {n, H});
    gpu.embedding(ht, begin, gpu.upload_batch(b), from_host);
    EXPECT_EQ(rel_error(values_of(gpu, from_host), values_of(cpu, want)), 0.0) << "n " << n;
  }
  // Unrounded F32 values: upload() converts on the GPU (convert_cuda), upload_host_resident
  // on the host (its CPU twin convert_cpu); every row must come out bit for bit the same.
  const auto raw = random_values(size_t(V * H), rng);
  Tensor on_gpu = gpu.upload(host_from(raw, DType::F32, {V, H}));
  Tensor on_host = gpu.upload_host_resident(host_from(raw, DType::F32, {V, H}));
  std::vector<int32_t> all(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) all[size_t(i)] = int32_t(begin + i);
  const Batch b = ids_batch(all);
  Tensor x = gpu_poisoned(gpu, DType::F32, {V, H}), y = gpu_poisoned(gpu, DType::F32, {V, H});
  gpu.embedding(on_gpu, begin, gpu.upload_batch(b), x);
  gpu.embedding(on_host, begin, gpu.upload_batch(b), y);
  EXPECT_EQ(values_of(gpu, x), values_of(gpu, y));
}

TESSERA_CUDA_OP_TEST(rmsnorm) {
  std::mt19937 rng(2);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (int64_t H : {896, 1000}) {
    const auto w = random_values(size_t(H), rng, 0.5f, 1.5f);
    for (int64_t n : kTokens) {
      const auto x = random_values(size_t(n * H), rng, -3.0f, 3.0f);
      Tensor want = cpu.alloc(DType::F32, {n, H}), got = gpu_poisoned(gpu, dt, {n, H});
      cpu.rmsnorm(host_from(x, DType::F32, {n, H}), host_from(w, DType::F32, {H}), 1e-6f, want);
      gpu.rmsnorm(gpu_from(x, DType::F32, {n, H}), gpu_from(w, DType::F32, {H}), 1e-6f, got);
      EXPECT_LT(rel_error(values_of(gpu, got), values_of(cpu, want)), tolerance(dt))
          << "H " << H << " n " << n;
    }
  }
}

TESSERA_CUDA_OP_TEST(add_rmsnorm) {
  std::mt19937 rng(3);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (int64_t H : {896, 1000}) {
    const auto w = random_values(size_t(H), rng, 0.5f, 1.5f);
    for (int64_t n : kTokens) {
      const auto res = random_values(size_t(n * H), rng, -3.0f, 3.0f);
      const auto delta = round_to(random_values(size_t(n * H), rng), dt);
      Tensor cres = host_from(res, DType::F32, {n, H}), gres = gpu_from(res, DType::F32, {n, H});
      Tensor want = cpu.alloc(DType::F32, {n, H}), got = gpu_poisoned(gpu, dt, {n, H});
      cpu.add_rmsnorm(cres, host_from(delta, DType::F32, {n, H}), host_from(w, DType::F32, {H}),
                      1e-6f, want);
      gpu.add_rmsnorm(gres, gpu_from(delta, dt, {n, H}), gpu_from(w, DType::F32, {H}), 1e-6f,
                      got);
      EXPECT_LT(rel_error(values_of(gpu, got), values_of(cpu, want)), tolerance(dt))
          << "H " << H << " n " << n;
      EXPECT_LT(rel_error(values_of(gpu, gres), values_of(cpu, cres)), 1e-6)
          << "residual stream (F32) H " << H << " n " << n;
    }
  }
}

TESSERA_CUDA_OP_TEST(linear) {
  std::mt19937 rng(4);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  struct Shape { int64_t K, N; bool bias; };
  for (Shape s : {Shape{896, 1000, true}, Shape{1000, 152, false}, Shape{80, 4864, true}}) {
    const auto w = round_to(random_values(size_t(s.N * s.K), rng), dt);
    const auto bias = random_values(size_t(s.N), rng);
    LinearWeight cw, gw;
    cw.weight = host_from(w, DType::F32, {s.N, s.K});
    gw.weight = gpu.upload(host_from(w, DType::F32, {s.N, s.K}));  // converted at upload
    EXPECT_EQ(gw.weight.dtype, dt);
    if (s.bias) {
      cw.bias = host_from(bias, DType::F32, {s.N});
      gw.bias = gpu.upload(cw.bias);
    }
    for (int64_t M : kTokens) {
      const auto x = round_to(random_values(size_t(M * s.K), rng), dt);
      Tensor want = cpu.alloc(DType::F32, {M, s.N});
      cpu.linear(host_from(x, DType::F32, {M, s.K}), cw, want);
      const auto ref = values_of(cpu, want);
      for (DType out : {DType::F32, dt}) {  // logits are F32, activations the compute dtype
        Tensor got = gpu_poisoned(gpu, out, {M, s.N});
        gpu.linear(gpu_from(x, dt, {M, s.K}), gw, got);
        EXPECT_LT(rel_error(values_of(gpu, got), ref), tolerance(dt))
            << "M " << M << " K " << s.K << " N " << s.N << " out " << dtype_name(out);
      }
    }
  }
}

TESSERA_CUDA_OP_TEST(silu_mul) {
  std::mt19937 rng(5);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  for (int64_t n : kTokens) {
    const int64_t I = 1000;
    const auto g = round_to(random_values(size_t(n * I), rng, -8.0f, 8.0f), dt);
    const auto u = round_to(random_values(size_t(n * I), rng, -2.0f, 2.0f), dt);
    Tensor want = cpu.alloc(DType::F32, {n, I}), got = gpu_poisoned(gpu, dt, {n, I});
    cpu.silu_mul(host_from(g, DType::F32, {n, I}), host_from(u, DType::F32, {n, I}), want);
    gpu.silu_mul(gpu_from(g, dt, {n, I}), gpu_from(u, dt, {n, I}), got);
    EXPECT_LT(rel_error(values_of(gpu, got), values_of(cpu, want)), tolerance(dt)) << "n " << n;
  }
}

TESSERA_CUDA_OP_TEST(gather_rows) {
  std::mt19937 rng(6);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  const int64_t rows = 1000, H = 900;
  const auto x = round_to(random_values(size_t(rows * H), rng), dt);
  for (int64_t n : kTokens) {
    std::vector<int32_t> idx(static_cast<size_t>(n));
    for (auto& i : idx) i = int32_t(rng() % rows);
    for (DType t : {dt, DType::F32}) {
      Tensor want = cpu.alloc(t, {n, H}), got = gpu_poisoned(gpu, t, {n, H});
      cpu.gather_rows(host_from(x, t, {rows, H}), host_i32(idx), want);
      gpu.gather_rows(gpu_from(x, t, {rows, H}), gpu_i32(idx), got);
      EXPECT_EQ(rel_error(values_of(gpu, got), values_of(cpu, want)), 0.0) << "n " << n;
    }
  }
}

// GPTQ act-order input permutations: columns in any order, repeated, and -1 padding (zeros).
TESSERA_CUDA_OP_TEST(gather_columns) {
  std::mt19937 rng(9);
  Backend &cpu = cpu_backend(), &gpu = gpu_backend(dt);
  const int64_t K = 900, J = 1024;
  std::vector<int32_t> idx(static_cast<size_t>(J));
  for (auto& i : idx) i = rng() % 8 == 0 ? -1 : int32_t(rng() % K);
  for (int64_t M : kTokens) {
    const auto x = round_to(random_values(size_t(M * K), rng), dt);
    for (DType t : {dt, DType::F32}) {
      Tensor want = cpu.alloc(t, {M, J}), got = gpu_poisoned(gpu, t, {M, J});
      cpu.gather_columns(host_from(x, t, {M, K}), host_i32(idx), want);
      gpu.gather_columns(gpu_from(x, t, {M, K}), gpu_i32(idx), got);
      EXPECT_EQ(rel_error(values_of(gpu, got), values_of(cpu, want)), 0.0)
          << "M " << M << " " << dtype_name(t);
    }
  }
}

// Sampling reads F32 logits whatever the compute dtype; dt only varies the inputs' rounding.
TESSERA_CUDA_OP_TEST(sampling) {
  std::mt19937 rng(dt == DType::F16 ? 7 : 8);
  for (int64_t V : {1000, 151936}) {
    auto logits = round_to(random_values(size_t(V), rng, -10.0f, 10.0f), dt);  // with ties
    Tensor gl = gpu_from(logits, DType::F32, {V});
    const SamplingParams ps[] = {{0.0f, 1.0f, 0},  {0.8f, 1.0f, 50}, {1.0f, 0.9f, 0},
                                 {1.3f, 0.95f, 40}, {0.7f, 1.0f, 0},  {1.0f, 1.0f, 1}};
    for (const SamplingParams& p : ps) {
      for (int k = 0; k < 16; ++k) {
        const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        EXPECT_EQ(cuda_sample(gl, p, u), sample_cpu(logits.data(), V, p, u))
            << "V " << V << " T " << p.temperature << " top_p " << p.top_p << " top_k "
            << p.top_k << " u " << u;
      }
    }
  }
}

}  // namespace
}  // namespace tessera::test
