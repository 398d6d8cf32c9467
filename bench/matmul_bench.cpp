// Matmul throughput of the CPU kernels on linear-layer shapes: GFLOP/s for prefill-sized M,
// GB/s of weights for M = 1 (decode). Usage: matmul_bench [threads]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "runtime/tensor.h"

using namespace tessera;

int main(int argc, char** argv) {
  if (argc > 1) omp_set_num_threads(std::atoi(argv[1]));
  struct Shape { int64_t M, K, N; };
  const Shape shapes[] = {{128, 768, 2048}, {128, 2048, 768}, {128, 768, 768},
                          {1, 768, 2048},   {1, 2048, 768},   {1, 768, 32000},
                          {2, 768, 2048},   {4, 768, 2048},   {2, 2048, 768},  // batches
                          {2, 3584, 37888}, {4, 3584, 37888},
                          {1, 3584, 37888},  {1, 18944, 3584},  // Qwen2.5-7B gate+up, down
                          {1, 3584, 152064}};  // Qwen2.5-7B's lm_head (1 GiB bf16)
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::printf("%-18s %-6s %10s %10s %10s\n", "M x K x N", "mode", "ms", "GFLOP/s", "W GB/s");
  for (const Shape& s : shapes) {
    std::vector<float> x(size_t(s.M * s.K)), y(size_t(s.M * s.N));
    // Weights in memory like the runtime's (host_alloc: huge pages where granted).
    const std::shared_ptr<void> w_buf = host_alloc(size_t(s.N * s.K) * sizeof(uint16_t));
    uint16_t* w = static_cast<uint16_t*>(w_buf.get());
    for (auto& v : x) v = u(rng);
    for (int64_t i = 0; i < s.N * s.K; ++i) w[i] = f32_to_bf16(u(rng) * 0.05f);
    for (int mode = 0; mode < 2; ++mode) {
      auto run = [&] {
        if (mode == 0) matmul_cpu(x.data(), s.M, s.K, w, DType::BF16, s.N, nullptr, y.data());
        else matmul_cpu_bf16_activations(x.data(), s.M, s.K, w, DType::BF16, s.N, nullptr, y.data());
      };
      run();
      std::vector<double> t;
      for (int r = 0; r < 20; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        run();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      const double sec = t[t.size() / 2];
      std::printf("%4lld x %4lld x %5lld %-6s %10.3f %10.1f %10.1f\n", (long long)s.M,
                  (long long)s.K, (long long)s.N, mode ? "fast" : "exact", sec * 1e3,
                  2.0 * s.M * s.K * s.N / sec / 1e9, 2.0 * s.N * s.K / sec / 1e9);
    }
  }
}
