// Quantized matmul throughput of the CPU kernels on linear-layer shapes: for each shape, int8 and
// int4 (group 128) weights with F32 activations (exact mode) and with int8 activations (fast
// mode, AVX512-VNNI). Copies of the matrix are cycled through until ~512 MiB are touched, so
// decode (M <= 8) reads from DRAM as a model's layers do. Prints ms per call, GFLOP/s and GB/s
// of packed weights. Usage: quant_matmul_bench [threads] [shape name filter, e.g. "gate+up"]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quant_matmul.h"
#include "runtime/tensor.h"

using namespace tessera;

namespace {

struct Shape { int64_t M, K, N; const char* what; };

struct Packed {  // one copy of a random quantized matrix
  std::shared_ptr<void> q;  // codes, in memory like the runtime's (host_alloc: huge pages)
  size_t q_bytes = 0;
  std::vector<float> scales;
  std::vector<int8_t> zeros;
  QuantMatrix m;
};

Packed random_packed(const Shape& s, bool int4, std::mt19937& rng) {
  Packed p;
  p.m.N = s.N;
  p.m.K = s.K;
  p.m.int4 = int4;
  p.m.group_size = int4 ? 128 : 0;
  p.q_bytes = size_t(int4 ? s.N * s.K / 2 : s.N * s.K);
  p.q = host_alloc(p.q_bytes);
  uint8_t* q = static_cast<uint8_t*>(p.q.get());
  for (size_t i = 0; i < p.q_bytes; ++i) q[i] = uint8_t(rng());
  p.scales.assign(size_t(s.N * p.m.groups()), 0.01f);
  p.zeros.assign(size_t(int4 ? s.N * p.m.groups() : 0), 8);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) omp_set_num_threads(std::atoi(argv[1]));
  const Shape shapes[] = {
      {1, 768, 2048, "stories110m up"},  {1, 2048, 768, "stories110m down"},
      {2, 768, 2048, "stories110m up x2"}, {4, 768, 2048, "stories110m up x4"},
      {1, 3584, 4608, "qwen7b qkv"},     {1, 3584, 37888, "qwen7b gate+up"},
      {1, 18944, 3584, "qwen7b down"},   {2, 18944, 3584, "qwen7b down x2"},
      {4, 18944, 3584, "qwen7b down x4"}, {2, 3584, 37888, "qwen7b gate+up x2"},
      {4, 3584, 37888, "qwen7b gate+up x4"}, {3, 3584, 4608, "qwen7b qkv x3"}, {1, 3584, 152064, "qwen7b lm_head"},
      {128, 3584, 4608, "qwen7b qkv"},
      {128, 18944, 3584, "qwen7b down"}};
  std::mt19937 rng(1);
  std::printf("threads %d, AVX512-VNNI %s\n", omp_get_max_threads(),
              cpu_has_avx512_vnni() ? "yes" : "no");
  std::printf("%-18s %-17s %5s %-14s %9s %9s %8s\n", "shape", "M x K x N", "w", "activations",
              "ms", "GFLOP/s", "W GB/s");
  const std::string filter = argc > 2 ? argv[2] : "";
  for (const Shape& s : shapes) {
    if (std::string(s.what).find(filter) == std::string::npos) continue;
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> x(size_t(s.M * s.K)), y(size_t(s.M * s.N));
    for (auto& v : x) v = d(rng);
    for (bool int4 : {false, true}) {
      std::vector<Packed> copies;
      size_t bytes = 0;
      do {
        copies.push_back(random_packed(s, int4, rng));
        bytes += copies.back().q_bytes;
      } while (bytes < (size_t(512) << 20) && s.M <= 8);  // decode: from DRAM
      for (Packed& c : copies) {  // (the vector has stopped moving)
        c.m.q = static_cast<const uint8_t*>(c.q.get());
        c.m.scales = c.scales.data();
        c.m.zeros = int4 ? c.zeros.data() : nullptr;
      }
      for (bool q8 : {false, true}) {
        size_t next = 0;
        auto run = [&] {
          const QuantMatrix& m = copies[next++ % copies.size()].m;
          if (q8) quant_matmul_cpu_q8(x.data(), s.M, m, nullptr, y.data());
          else quant_matmul_cpu(x.data(), s.M, m, nullptr, y.data());
        };
        for (size_t i = 0; i < copies.size(); ++i) run();
        std::vector<double> t;
        const int reps = int(std::max<size_t>(20, 2 * copies.size()));
        for (int r = 0; r < reps; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          run();
          t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(t.begin(), t.end());
        const double sec = t[t.size() / 2];
        char dims[64];
        std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s.M, (long long)s.K,
                      (long long)s.N);
        std::printf("%-18s %-17s %5s %-14s %9.3f %9.1f %8.1f\n", s.what, dims,
                    int4 ? "int4" : "int8", q8 ? "int8 (fast)" : "f32 (exact)", sec * 1e3,
                    2.0 * double(s.M * s.K * s.N) / sec * 1e-9,
                    double(copies[0].q_bytes) / sec * 1e-9);
      }
    }
  }
}
