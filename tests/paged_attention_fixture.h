// A paged KV cache and batch for the host emulations of the CUDA attention kernels
// (tests/kernel_attention_tiles_test.cpp, tests/kernel_attention_mma_test.cpp): sequences of
// given contexts and new tokens over shuffled cache blocks, random q / K / V (or int8 codes and
// scales), NaN in every F32 slot no sequence owns, and the CPU kernel's output on it.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
#include "runtime/batch.h"
#include "runtime/dtype.h"

namespace tessera::test {

struct Scenario {
  int64_t heads, kv_heads, d, window;
  std::vector<int64_t> ctx, fresh;  // per sequence: tokens after the step, new ones
  bool int8 = false;
};

inline std::string describe(const Scenario& s) {
  std::ostringstream o;
  o << "heads " << s.heads << "/" << s.kv_heads << " d " << s.d << " window " << s.window
    << (s.int8 ? " int8" : "") << " ctx/fresh";
  for (size_t i = 0; i < s.ctx.size(); ++i) o << ' ' << s.ctx[i] << '/' << s.fresh[i];
  return o.str();
}

constexpr int64_t kBlock = 16;

struct PagedSetup {
  Batch b;
  std::vector<float> q, kf, vf, ks, vs;  // kf / vf: F32 cache, or the I8 codes as floats
  std::vector<int8_t> kc, vc;
  PagedKv cache;
};

// Shuffled block ids, a table stride padded to a power of two as the CUDA upload pads it,
// NaN (F32) in slots no sequence owns.
inline PagedSetup build(const Scenario& sc, std::mt19937& rng) {
  PagedSetup s;
  const int64_t kvh = sc.kv_heads, d = sc.d;
  int64_t blocks = 2, widest = 1;
  for (int64_t c : sc.ctx) {
    blocks += (c + kBlock - 1) / kBlock;
    widest = std::max(widest, (c + kBlock - 1) / kBlock);
  }
  int64_t stride = 8;
  while (stride < widest) stride *= 2;
  std::vector<int32_t> pool(static_cast<size_t>(blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  const size_t elems = size_t(blocks * kvh * kBlock * d), rows = size_t(blocks * kvh * kBlock);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> code(-127, 127);
  std::uniform_real_distribution<float> scale(0.005f, 0.03f);
  if (sc.int8) {
    s.kc.resize(elems);
    s.vc.resize(elems);
    for (size_t i = 0; i < elems; ++i) { s.kc[i] = int8_t(code(rng)); s.vc[i] = int8_t(code(rng)); }
    s.ks.resize(rows);
    s.vs.resize(rows);
    for (size_t i = 0; i < rows; ++i) { s.ks[i] = scale(rng); s.vs[i] = scale(rng); }
    s.cache = PagedKv{s.kc.data(), s.vc.data(), kvh, kBlock, d, DType::I8, s.ks.data(),
                      s.vs.data()};
  } else {
    s.kf.assign(elems, NAN);
    s.vf.assign(elems, NAN);
    s.cache = PagedKv{s.kf.data(), s.vf.data(), kvh, kBlock, d};
  }
  Batch& b = s.b;
  b.max_blocks_per_seq = int32_t(stride);
  b.seq_begin.push_back(0);
  size_t next = 0;
  for (size_t i = 0; i < sc.ctx.size(); ++i) {
    std::vector<int32_t> table(size_t(stride), -1);
    for (int64_t j = 0; j < (sc.ctx[i] + kBlock - 1) / kBlock; ++j) table[size_t(j)] = pool[next++];
    b.block_tables.insert(b.block_tables.end(), table.begin(), table.end());
    for (int64_t p = 0; p < sc.ctx[i]; ++p) {
      const int64_t slot = table[size_t(p / kBlock)] * kBlock + p % kBlock;
      if (!sc.int8)
        for (int64_t e = 0; e < kvh * d; ++e) {  // the slot's rows of every kv head
          const int64_t at = ((slot / kBlock * kvh + e / d) * kBlock + slot % kBlock) * d + e % d;
          s.kf[size_t(at)] = nd(rng);
          s.vf[size_t(at)] = nd(rng);
        }
      if (p < sc.ctx[i] - sc.fresh[i]) continue;
      b.token_ids.push_back(0);
      b.positions.push_back(int32_t(p));
      b.slot_mapping.push_back(int32_t(slot));
    }
    b.seq_begin.push_back(int32_t(b.token_ids.size()));
    b.context_lens.push_back(int32_t(sc.ctx[i]));
  }
  validate_batch(b, blocks * kBlock, kBlock);
  s.q.resize(size_t(b.num_tokens() * sc.heads * d));
  for (float& x : s.q) x = nd(rng);
  return s;
}

struct QAcc {
  const PagedSetup* s;
  int64_t heads, d;
  float operator()(int64_t t, int64_t h, int64_t i) const {
    return s->q[size_t((t * heads + h) * d + i)];
  }
};
struct KvAcc {
  const PagedSetup* s;
  int64_t d;
  bool int8;
  float k(int64_t row, int64_t i) const {
    const size_t at = size_t(row * d + i);
    return int8 ? float(s->kc[at]) * s->ks[size_t(row)] : s->kf[at];
  }
  float v(int64_t row, int64_t i) const {
    const size_t at = size_t(row * d + i);
    return int8 ? float(s->vc[at]) * s->vs[size_t(row)] : s->vf[at];
  }
};

// The CUDA kernels' views of the scenario (kernels/attention_tiles.h): heads, head_dim, the
// 1/sqrt(d) scale and the window; the batch's index arrays.
inline tiles::Geometry geometry_of(const Scenario& sc) {
  return {sc.heads, sc.kv_heads, sc.d, kBlock, float(1.0 / std::sqrt(double(sc.d))), sc.window};
}
inline tiles::BatchIndex batch_index_of(const PagedSetup& s) {
  const Batch& b = s.b;
  return {b.positions.data(), b.seq_begin.data(), b.block_tables.data(), b.num_tokens(),
          b.num_seqs(), b.max_blocks_per_seq};
}

// paged_attention_cpu on the setup: the reference output [n, heads * d].
inline std::vector<float> cpu_reference(const Scenario& sc, const PagedSetup& s) {
  std::vector<float> want(s.q.size(), NAN);
  paged_attention_cpu(s.q.data(), sc.heads, s.cache, s.b, float(1.0 / std::sqrt(double(sc.d))),
                      sc.window, want.data());
  return want;
}

// Largest |got - want| over the largest |want| (outputs are averages of values of size ~1);
// infinity when got holds a NaN.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0.0, mx = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    err = std::max(err, double(std::fabs(got[i] - want[i])));
    mx = std::max(mx, double(std::fabs(want[i])));
  }
  return err / std::max(mx, 1e-30);
}

// Rounds q and an F32 cache to fp16 values (NaN stays NaN): the tensor-core kernel stages
// them as fp16, so on these inputs only its own roundings (the probabilities) remain.
inline void round_to_f16(PagedSetup& s) {
  for (std::vector<float>* v : {&s.q, &s.kf, &s.vf})
    for (float& x : *v)
      if (!std::isnan(x)) x = f16_to_f32(f32_to_f16(x));
}

// The order a host emulation runs a phase's threads (or lanes) in: forward, reversed or
// shuffled. A thread that reads what another writes in the same phase, a race on the GPU,
// gives different results in different orders.
enum class Order { kForward, kReverse, kShuffled };
constexpr Order kOrders[] = {Order::kForward, Order::kReverse, Order::kShuffled};

inline std::vector<int> ordered(int count, Order order, std::mt19937& rng) {
  std::vector<int> ids(static_cast<size_t>(count));
  std::iota(ids.begin(), ids.end(), 0);
  if (order == Order::kReverse) std::reverse(ids.begin(), ids.end());
  if (order == Order::kShuffled) std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

}  // namespace tessera::test
