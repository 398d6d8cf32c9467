// The CUDA backend's tiled attention algorithm (kernels/attention_tiles.h) run on the host:
// every block of the launch grid, each phase for all 128 "threads" in turn (the barriers of
// the GPU kernel), then the split-K combine, compared with paged_attention_cpu on the same
// paged cache. This is the GPU kernel's indexing, masking, online softmax and split arithmetic
// (the CUDA file adds only accessors and launches), tested where there is no GPU. Cache slots
// no sequence owns hold NaN, so a read outside a sequence's keys poisons the output; each
// phase's threads run in forward, reverse and shuffled order, so a race changes the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
#include "runtime/batch.h"
#include "tests/paged_attention_fixture.h"

namespace tessera::test {
namespace {

namespace tl = tessera::tiles;

template <int KT> struct HostExec {  // phases in `order` (paged_attention_fixture.h)
  Order order = Order::kForward;
  std::mt19937 rng{11};
  tl::Regs<KT> regs[tl::kThreads];
  template <class F> void each(F&& f) {
    for (int t : ordered(tl::kThreads, order, rng)) f(t, regs[t]);
  }
};

struct OutAcc {  // layout of OutWrite in attention_tiled.cu
  std::vector<float>* out;
  std::vector<float>* part;
  int64_t n, heads, d, splits;
  void write(int64_t t, int64_t h, int64_t i, float x) const {
    out->at(size_t((t * heads + h) * d + i)) = x;
  }
  void partial(int64_t t, int64_t h, int64_t z, int64_t i, float x) const {
    part->at(size_t(((t * heads + h) * splits + z) * d + i)) = x;
  }
  void partial_ml(int64_t t, int64_t h, int64_t z, float m, float l) const {
    const size_t at = size_t(n * heads * splits * d + ((t * heads + h) * splits + z) * 2);
    part->at(at) = m;
    part->at(at + 1) = l;
  }
};

// The grid of plan_tiles (and the combine) on the host; returns the output [n, heads * d].
std::vector<float> run_tiles(const Scenario& sc, const PagedSetup& s, int64_t sm_count,
                             int64_t partial_floats, tl::Plan* plan_out = nullptr,
                             Order order = Order::kForward) {
  const Batch& b = s.b;
  const int64_t n = b.num_tokens(), d = sc.d;
  const tl::Geometry g = geometry_of(sc);
  const tl::BatchIndex bi = batch_index_of(s);
  const tl::Plan pl = tl::plan_tiles(n, b.num_seqs(), sc.heads, sc.kv_heads, d,
                                     int64_t(b.max_blocks_per_seq) * kBlock, sm_count,
                                     partial_floats);
  if (plan_out) *plan_out = pl;
  std::vector<float> out(size_t(n * sc.heads * d), NAN);
  std::vector<float> part(size_t(n * sc.heads * pl.splits * (d + 2)), NAN);
  EXPECT_LE(pl.splits == 1 ? 0 : int64_t(part.size()), partial_floats);
  const OutAcc oa{&out, &part, n, sc.heads, d, pl.splits};
  std::vector<float> shared(size_t(tl::shared_floats(d)));  // exact: ASan sees overruns
  for (int64_t z = 0; z < pl.splits; ++z)
    for (int64_t y = 0; y < sc.kv_heads * pl.head_chunks; ++y)
      for (int64_t x = 0; x < pl.token_blocks; ++x) {
        std::fill(shared.begin(), shared.end(), NAN);  // nothing carries over between blocks
        tl::with_key_tile(d, [&](auto kt) {
          auto exec = std::make_unique<HostExec<decltype(kt)::value>>();
          exec->order = order;
          tl::attention_block<decltype(kt)::value>(*exec, shared.data(), g, bi, pl, x, y, z,
                                                   QAcc{&s, sc.heads, d},
                                                   KvAcc{&s, d, sc.int8}, oa);
        });
      }
  if (pl.splits > 1)
    for (int64_t r = 0; r < n * sc.heads; ++r)
      for (int64_t i = 0; i < d; ++i)
        out[size_t(r * d + i)] = tl::combine_splits(
            part.data() + n * sc.heads * pl.splits * d + r * pl.splits * 2,
            part.data() + r * pl.splits * d, pl.splits, d, i);
  return out;
}

double compare(const Scenario& sc, int64_t sm_count, int64_t partial_floats,
               tl::Plan* plan = nullptr, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  const PagedSetup s = build(sc, rng);
  const std::vector<float> want = cpu_reference(sc, s);
  double err = 0.0;  // the largest of the three thread orders
  for (Order o : kOrders)
    err = std::max(err, relative_error(run_tiles(sc, s, sm_count, partial_floats, plan, o), want));
  return err;
}

// Both sides sum in float (up to 3,000 terms a row, in different orders): the CPU kernel's own
// test allows 2e-5 against a double reference. A wrong mask or index is off by ~1e-1.
constexpr double kTol = 2e-5;
constexpr int64_t kH200Sms = 132;
constexpr int64_t kScratch = (int64_t(4) << 20) / 4;  // kAttentionScratch in floats

TEST(AttentionTiles, PrefillAndChunkedPrefillMatchTheCpu) {
  const Scenario cases[] = {
      {4, 4, 64, 0, {1}, {1}},                   // MHA: 16 tokens a block
      {4, 4, 64, 0, {100}, {100}},
      {14, 2, 128, 0, {100}, {100}},             // GQA 7: 2 tokens a block
      {14, 2, 128, 0, {40, 1000}, {23, 5}},      // runs of two sequences in one block
      {8, 2, 80, 0, {33, 1, 17}, {33, 1, 9}},
      {20, 1, 80, 0, {50}, {50}},                // 20 heads a kv head: two head chunks
      {8, 2, 256, 0, {70}, {70}},                // head_dim 256: 8-key tiles
      {6, 2, 66, 0, {40, 9}, {40, 3}},           // head_dim % 4 != 0: scalar dot products
      {14, 2, 128, 64, {300}, {300}},            // sliding window
      {14, 2, 128, 0, {100}, {100}, true},       // int8 cache
      {8, 2, 80, 30, {40, 90}, {23, 7}, true},
  };
  for (const Scenario& sc : cases) EXPECT_LT(compare(sc, kH200Sms, kScratch), kTol) << describe(sc);
}

TEST(AttentionTiles, DecodeSplitsTheContextAndCombines) {
  const Scenario cases[] = {
      {28, 4, 128, 0, {3000}, {1}},               // Qwen2.5-7B's heads, one long sequence
      {14, 2, 128, 0, {1, 17, 1000}, {1, 1, 1}},  // short and long in one batch
      {4, 4, 64, 0, {700, 5}, {1, 1}},
      {20, 1, 80, 0, {2000}, {1}},
      {8, 2, 256, 0, {900}, {1}},
      {6, 2, 66, 0, {800, 20}, {1, 1}},
      {14, 2, 128, 100, {1000, 300}, {1, 1}},     // window: early splits see no keys
      {28, 4, 128, 0, {2500}, {1}, true},         // int8 cache
  };
  for (const Scenario& sc : cases) {
    tl::Plan plan;
    EXPECT_LT(compare(sc, kH200Sms, kScratch, &plan), kTol) << describe(sc);
    if (*std::max_element(sc.ctx.begin(), sc.ctx.end()) >= 700) {
      EXPECT_GT(plan.splits, 1) << describe(sc);
    }
  }
}

TEST(AttentionTiles, SplitCountFollowsTheGpuAndTheScratch) {
  const Scenario sc{28, 4, 128, 0, {3000}, {1}};
  tl::Plan one_sm, many_sms, no_room;
  EXPECT_LT(compare(sc, 1, kScratch, &one_sm), kTol);
  EXPECT_LT(compare(sc, 4096, kScratch, &many_sms), kTol);
  EXPECT_LT(compare(sc, kH200Sms, 28 * 130, &no_room), kTol);  // room for one split only
  EXPECT_EQ(one_sm.splits, 1);  // 4 kv-head blocks already fill 2 blocks a SM
  // At most one split per 4 key tiles of the padded table (256 blocks of 16 keys).
  EXPECT_EQ(many_sms.splits, 256 * 16 / (4 * tl::key_tile(128)));
  EXPECT_EQ(no_room.splits, 1);
  const tl::Plan p = tl::plan_tiles(1, 1, 28, 4, 128, 32768, kH200Sms, kScratch);
  EXPECT_EQ(p.splits * p.split_len >= 32768, true);
  EXPECT_EQ(p.split_len % tl::key_tile(128), 0);
  EXPECT_EQ(p.splits, 64);  // 66 wanted: 497 keys -> 512 a split
}

TEST(AttentionTiles, ABrokenMaskIsCaught) {
  // The comparison can fail: the same scenario with the window dropped from the tiles only.
  std::mt19937 rng(7);
  Scenario sc{14, 2, 128, 64, {300}, {300}};
  const PagedSetup s = build(sc, rng);
  std::vector<float> want(s.q.size());
  paged_attention_cpu(s.q.data(), sc.heads, s.cache, s.b, float(1.0 / std::sqrt(128.0)), 64,
                      want.data());
  sc.window = 0;
  const std::vector<float> got = run_tiles(sc, s, kH200Sms, kScratch);
  double err = 0.0;
  for (size_t i = 0; i < got.size(); ++i) err = std::max(err, double(std::fabs(got[i] - want[i])));
  EXPECT_GT(err, 1e-2);
}

}  // namespace
}  // namespace tessera::test
