// The CUDA backend's tensor-core prefill attention (kernels/attention_mma.h) run on the host:
// every block of the launch grid, its thread phases for all 128 "threads", its warp phases for
// each of the 4 warps with whole 16x16 tiles standing for the WMMA fragments (the row map
// loaded from a tile of row indices, as on the GPU), compared with paged_attention_cpu. With
// float tiles the comparison is tight (indexing, masks, block placement, online softmax);
// with fp16 tiles it is the GPU's rounding (inputs rounded to fp16 first, as the GPU test's
// are, so what remains is the fp16 probabilities), each phase's threads and lanes in
// forward, reverse and shuffled order (a race shows as a change). What this cannot test is WMMA itself and
// the shared-memory sizes on a real GPU (tests/cuda_attention_test.cpp does, on a GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/attention_mma.h"
#include "tests/paged_attention_fixture.h"

namespace tessera::test {
namespace {

namespace mt = tessera::mma_tiles;

struct F16 {  // an fp16 value's bits (the GPU's __half)
  uint16_t bits;
};

template <class Elem> struct HostMma {
  using E = Elem;
  struct Tile {
    float v[16][16];
  };
  using A = Tile;
  using BCol = Tile;
  using BRow = Tile;
  using Acc = Tile;
  static E to_e(float x) {  // fp16 saturates at its largest finite value, as on the GPU
    if constexpr (std::is_same_v<E, float>) return x;
    else return F16{f32_to_f16(std::fmin(std::fmax(x, -65504.0f), 65504.0f))};
  }
  static float from_e(E x) {
    if constexpr (std::is_same_v<E, float>) return x;
    else return f16_to_f32(x.bits);
  }
  void zero(Tile& t) const { std::memset(&t, 0, sizeof t); }
  void load_a(Tile& t, const E* p, int ld) const {
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 16; ++c) t.v[r][c] = from_e(p[r * ld + c]);
  }
  void load_b_col(Tile& t, const E* p, int ld) const {  // element (k, n) at p[n * ld + k]
    for (int k = 0; k < 16; ++k)
      for (int n = 0; n < 16; ++n) t.v[k][n] = from_e(p[n * ld + k]);
  }
  void load_b_row(Tile& t, const E* p, int ld) const { load_a(t, p, ld); }
  void load_acc(Tile& t, const float* p, int ld) const {
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 16; ++c) t.v[r][c] = p[r * ld + c];
  }
  void mma(Tile& c, const Tile& a, const Tile& b) const {
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        float s = c.v[i][j];
        for (int k = 0; k < 16; ++k) s += a.v[i][k] * b.v[k][j];
        c.v[i][j] = s;
      }
  }
  void store(float* p, const Tile& t, int ld) const {
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 16; ++c) p[r * ld + c] = t.v[r][c];
  }
  void gather_rows(Tile& g, const Tile& rows, const float* f) const {
    for (int r = 0; r < 16; ++r)
      for (int j = 0; j < 16; ++j) g.v[r][j] = f[int(rows.v[r][j])];
  }
  void scale(Tile& c, const Tile& g) const {
    for (int r = 0; r < 16; ++r)
      for (int j = 0; j < 16; ++j) c.v[r][j] *= g.v[r][j];
  }
};

template <class M> struct HostExec {  // phases in `order` (paged_attention_fixture.h)
  Order order = Order::kForward;
  std::mt19937 rng{11};
  std::vector<mt::WarpRegs<M>> regs = std::vector<mt::WarpRegs<M>>(mt::kWarps);
  std::vector<int> sequence(int count) { return ordered(count, order, rng); }
  template <class F> void threads(F&& f) {
    for (int t : sequence(mt::kThreads)) f(t);
  }
  template <class F> void warps(F&& f) {
    for (int w : sequence(mt::kWarps)) f(w, regs[size_t(w)]);
  }
  template <class F> void lanes(F&& f) {
    for (int l : sequence(mt::kLanes)) f(l);
  }
};

template <class M> struct HostChunks {  // KvAcc's elements 8 at a time
  KvAcc kv;
  struct Chunk {
    float v[mt::kChunk];
  };
  Chunk k8(int64_t row, int i0) const {
    Chunk c;
    for (int i = 0; i < mt::kChunk; ++i) c.v[i] = kv.k(row, i0 + i);
    return c;
  }
  Chunk v8(int64_t row, int i0) const {
    Chunk c;
    for (int i = 0; i < mt::kChunk; ++i) c.v[i] = kv.v(row, i0 + i);
    return c;
  }
  Chunk none() const { return Chunk{}; }
  void put(typename M::E* dst, const Chunk& c) const {
    for (int i = 0; i < mt::kChunk; ++i) dst[i] = M::to_e(c.v[i]);
  }
};

struct OutAcc {  // out [n, heads, d]
  std::vector<float>* out;
  int64_t heads, d;
  void write(int64_t t, int64_t h, int64_t i, float x) const {
    float& o = out->at(size_t((t * heads + h) * d + i));
    EXPECT_TRUE(std::isnan(o)) << "output written twice: token " << t << " head " << h;
    o = x;
  }
};

// The grid of plan_mma on the host; returns the output [n, heads * d] (NaN where unwritten).
template <class E>
std::vector<float> run_mma(const Scenario& sc, const PagedSetup& s, Order order) {
  using M = HostMma<E>;
  const Batch& b = s.b;
  const int64_t n = b.num_tokens(), d = sc.d;
  const mt::Geometry g = geometry_of(sc);
  const mt::BatchIndex bi = batch_index_of(s);
  const mt::Plan pl = mt::plan_mma(n, b.num_seqs(), sc.heads, sc.kv_heads);
  std::vector<float> out(size_t(n * sc.heads * d), NAN);
  // Exactly the kernel's bytes (ASan sees overruns), garbage between blocks.
  std::vector<unsigned char> shared(size_t(mt::shared_bytes(d, int64_t(sizeof(E)))));
  const M mm;
  for (int64_t y = 0; y < sc.kv_heads * pl.head_chunks; ++y)
    for (int64_t x = 0; x < pl.blocks_x; ++x) {
      std::fill(shared.begin(), shared.end(), 0xff);  // NaN as floats and as fp16
      auto exec = std::make_unique<HostExec<M>>();
      exec->order = order;
      mt::mma_attention_block(*exec, mm, shared.data(), g, bi, pl, x, y,
                              QAcc{&s, sc.heads, d}, HostChunks<M>{KvAcc{&s, d, sc.int8}},
                              OutAcc{&out, sc.heads, d});
    }
  return out;
}

// The largest relative error over the thread orders: all three with fp16 tiles, the GPU's
// shared-memory layout, where a race would be one; float tiles (their own layout, for the
// exact arithmetic) in order.
template <class E> double compare(const Scenario& sc, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  PagedSetup s = build(sc, rng);
  if constexpr (!std::is_same_v<E, float>) round_to_f16(s);
  const std::vector<float> want = cpu_reference(sc, s);
  double err = 0.0;
  for (Order o : kOrders) {
    err = std::max(err, relative_error(run_mma<E>(sc, s, o), want));
    if (std::is_same_v<E, float>) break;
  }
  return err;
}

// Float tiles: both sides sum in float in different orders (as the tiled kernel's test).
constexpr double kTol = 2e-5;
// fp16 tiles: the GPU tests' fp16 tolerance (tests/cuda_test_util.h); probabilities rounded
// to fp16 (2^-11 relative) move an output by ~1e-4 of its scale, a wrong index by ~1e-1.
constexpr double kF16Tol = 2e-3;

const Scenario kPrefill[] = {
    {4, 4, 64, 0, {1}, {1}},                   // MHA: 64 tokens a block
    {4, 4, 64, 0, {100}, {100}},
    {14, 2, 128, 0, {100}, {100}},             // GQA 7: 9 tokens a block, 63 rows
    {28, 4, 128, 0, {333}, {333}},             // Qwen2.5-7B's heads
    {14, 2, 128, 0, {40, 1000}, {23, 5}},      // chunked prefill after a cached context
    {8, 2, 80, 0, {33, 1, 17}, {33, 1, 9}},    // head_dim 80: 5 fragments
    {20, 1, 80, 0, {50}, {50}},                // 20 heads a kv head: 3 tokens a block
    {130, 1, 16, 0, {5, 3}, {5, 3}},           // 130 heads a kv head: three head chunks
    {8, 2, 32, 0, {70, 1, 1, 65}, {70, 1, 1, 64}},  // decode tokens beside prefills
    {28, 4, 128, 0, {500, 1000, 7, 300}, {200, 1, 7, 1}},
    {14, 2, 128, 64, {300}, {300}},            // sliding window
    {8, 2, 96, 30, {40, 90}, {23, 7}},
    {14, 2, 128, 0, {100}, {100}, true},       // int8 cache
    {8, 2, 80, 30, {40, 90}, {23, 7}, true},
};

TEST(AttentionMma, PrefillWithFloatTilesMatchesTheCpu) {
  for (const Scenario& sc : kPrefill) EXPECT_LT(compare<float>(sc), kTol) << describe(sc);
}

TEST(AttentionMma, PrefillWithFp16TilesMatchesTheCpu) {
  for (const Scenario& sc : kPrefill) EXPECT_LT(compare<F16>(sc), kF16Tol) << describe(sc);
}

TEST(AttentionMma, BlocksCoverEveryTokenOfOneSequenceOnce) {
  // Sequences of 0-200 tokens (an empty one too), several head groups: every token falls in
  // exactly one block of its own sequence, each block holds at most tokens_per_block, and
  // at most one block a sequence is idle.
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> len(0, 200), count(1, 40);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int32_t> begin{0};
    for (int s = count(rng); s > 0; --s)  // every 7th trial: all sequences empty
      begin.push_back(begin.back() + len(rng) * (trial % 7 != 0));
    const int64_t n = begin.back(), seqs = int64_t(begin.size()) - 1;
    for (int64_t group : {1, 7, 8, 20, 64}) {
      const mt::Plan pl = mt::plan_mma(n, seqs, group, 1);
      const mt::BatchIndex bi{nullptr, begin.data(), nullptr, n, seqs, 0};
      std::vector<int> seen(size_t(n), 0);
      int64_t idle = 0;
      for (int64_t x = 0; x < pl.blocks_x; ++x) {
        int64_t seq = -1, t0 = 0, t1 = 0;
        if (!mt::locate(bi, pl.tokens_per_block, x, seq, t0, t1)) {
          ++idle;
          continue;
        }
        ASSERT_GE(t0, begin[size_t(seq)]);
        ASSERT_LE(t1, begin[size_t(seq) + 1]);
        ASSERT_LE(t1 - t0, pl.tokens_per_block);
        for (int64_t t = t0; t < t1; ++t) ++seen[size_t(t)];
      }
      for (int64_t t = 0; t < n; ++t) ASSERT_EQ(seen[size_t(t)], 1) << "token " << t;
      EXPECT_LE(idle, seqs);  // at most one block a sequence has nothing to do
    }
  }
}

TEST(AttentionMma, SharedMemoryLeavesTwoBlocksOnAT4) {
  EXPECT_EQ(mt::shared_bytes(128, 2), 29952);
  EXPECT_LE(2 * mt::shared_bytes(128, 2), 64 * 1024);
  EXPECT_TRUE(mt::supports_head_dim(64) && mt::supports_head_dim(80) && mt::supports_head_dim(128));
  EXPECT_FALSE(mt::supports_head_dim(66) || mt::supports_head_dim(256) || mt::supports_head_dim(0));
}

TEST(AttentionMma, ABrokenMaskIsCaught) {
  // The comparison can fail: the window dropped from the kernel's side only.
  std::mt19937 rng(7);
  Scenario sc{14, 2, 128, 64, {300}, {300}};
  const PagedSetup s = build(sc, rng);
  const std::vector<float> want = cpu_reference(sc, s);
  sc.window = 0;
  EXPECT_GT(relative_error(run_mma<float>(sc, s, Order::kForward), want), 1e-2);
}

}  // namespace
}  // namespace tessera::test
