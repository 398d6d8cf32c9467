// Decode attention over the paged KV cache on the CPU (paged_attention_cpu): one new token per
// step attending to a context of C tokens, every layer of a model's shape in turn (each layer
// its own cache, so a step reads the model's whole KV from DRAM as decode does), for an F32
// and an I8 cache. Prints ms per step (all layers) and GB/s of K/V bytes read (I8: codes and
// scales). Usage: attention_bench [threads]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/attention.h"

using namespace tessera;

namespace {

struct Shape { const char* what; int64_t layers, heads, kv_heads, head_dim, context; };

constexpr int64_t kBlockSize = 16;

struct LayerCache {  // one layer's K/V for `context` tokens in blocks 0..n (in order)
  std::vector<float> kf, vf;
  std::vector<int8_t> kq, vq;
  std::vector<float> ks, vs;
  PagedKv view(DType dt) {
    PagedKv c;
    c.dtype = dt;
    c.k = dt == DType::F32 ? static_cast<void*>(kf.data()) : kq.data();
    c.v = dt == DType::F32 ? static_cast<void*>(vf.data()) : vq.data();
    c.k_scale = dt == DType::I8 ? ks.data() : nullptr;
    c.v_scale = dt == DType::I8 ? vs.data() : nullptr;
    return c;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) omp_set_num_threads(std::atoi(argv[1]));
  const Shape shapes[] = {{"stories110m", 12, 12, 12, 64, 1024},
                          {"qwen7b", 28, 28, 4, 128, 4096},
                          {"qwen7b", 28, 28, 4, 128, 16384}};
  std::printf("threads %d\n%-12s %8s %5s %9s %9s %8s\n", omp_get_max_threads(), "shape",
              "context", "kv", "MiB/step", "ms/step", "GB/s");
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Shape& s : shapes) {
    const int64_t blocks = (s.context + kBlockSize - 1) / kBlockSize;
    const int64_t rows = blocks * s.kv_heads * kBlockSize, d = s.head_dim;
    std::vector<LayerCache> layers(static_cast<size_t>(s.layers));
    for (LayerCache& l : layers) {
      l.kf.resize(size_t(rows * d));
      l.vf.resize(size_t(rows * d));
      for (float& x : l.kf) x = nd(rng);
      for (float& x : l.vf) x = nd(rng);
      l.kq.resize(l.kf.size());
      l.vq.resize(l.vf.size());
      l.ks.resize(size_t(rows));
      l.vs.resize(size_t(rows));
      for (int64_t r = 0; r < rows; ++r) {
        l.ks[size_t(r)] = quantize_kv_row(l.kf.data() + r * d, d, l.kq.data() + r * d);
        l.vs[size_t(r)] = quantize_kv_row(l.vf.data() + r * d, d, l.vq.data() + r * d);
      }
    }
    Batch b;  // one sequence, its last token new
    b.token_ids = {0};
    b.positions = {int32_t(s.context - 1)};
    b.seq_begin = {0, 1};
    b.context_lens = {int32_t(s.context)};
    b.max_blocks_per_seq = int32_t(blocks);
    for (int64_t i = 0; i < blocks; ++i) b.block_tables.push_back(int32_t(i));
    std::vector<float> q(size_t(s.heads * d)), out(q.size());
    for (float& x : q) x = nd(rng);
    for (DType dt : {DType::F32, DType::I8}) {
      const double bytes = double(s.layers) * 2.0 * double(s.context * s.kv_heads) *
                           (dt == DType::F32 ? 4.0 * double(d) : double(d) + 4.0);
      std::vector<double> t;
      for (int r = 0; r < 7; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (LayerCache& l : layers) {
          PagedKv c = l.view(dt);
          c.kv_heads = s.kv_heads;
          c.block_size = kBlockSize;
          c.head_dim = d;
          paged_attention_cpu(q.data(), s.heads, c, b, 0.125f, 0, out.data());
        }
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      const double sec = t[t.size() / 2];
      std::printf("%-12s %8lld %5s %9.1f %9.3f %8.1f\n", s.what, (long long)s.context,
                  dt == DType::F32 ? "f32" : "i8", bytes / 1048576.0, sec * 1e3,
                  bytes / sec * 1e-9);
    }
  }
}
