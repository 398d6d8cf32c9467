// The tiled paged attention of the CUDA backend (kernels/attention_tiled.cu), written once for
// the GPU and for a host emulation (tests/kernel_attention_tiles_test.cpp runs it in the CPU
// build against paged_attention_cpu, so the indexing, masking and split-K arithmetic are
// tested where there is no GPU).
//
// One block of kThreads threads computes kRows query rows, (token, query head) pairs of one
// sequence's tokens and one kv head's query heads, so each K/V row it loads serves every query
// head of the group (GQA) and, in prefill, several tokens. Keys go through shared memory in
// tiles with an online softmax per row. Decode batches (one token per sequence) split each
// context over gridDim.z blocks (split-K, "flash decoding") so a batch of one still fills the
// GPU; combine_splits merges their partial softmaxes.
//
// The block body is a sequence of phases separated by barriers. Exec::each(f) runs
// f(thread, registers) for every thread and then a barrier: on the GPU each thread runs its
// own f and __syncthreads(); the host emulation loops over the threads. Uniform values (loop
// bounds) are computed by every thread alike.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define TESSERA_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)
#define TESSERA_UNROLL _Pragma("unroll")  // register arrays stay in registers
#else
#define TESSERA_UNROLL
#endif
#else
#define TESSERA_HD inline
#define TESSERA_UNROLL
#endif

namespace tessera::tiles {

constexpr int kThreads = 128;
constexpr int kRows = 16;       // query rows per block
constexpr int kKeyGroups = 8;   // score phase: thread t takes row t / 8, keys t % 8 + 8 j
constexpr int kMaxHeadDim = 256;
constexpr int kMaxKeysPerThread = 4;                     // key tile / kKeyGroups
constexpr int kMaxLoads = 16;  // K (and V) elements per thread a tile: tile * d <= 2048
constexpr int kPad = 4;  // floats after each shared row: spreads banks, keeps 16-byte rows

template <class T> TESSERA_HD T tmin(T a, T b) { return a < b ? a : b; }
template <class T> TESSERA_HD T tmax(T a, T b) { return a < b ? b : a; }

TESSERA_HD float tile_exp(float x) {
#if defined(__CUDA_ARCH__)
  return __expf(x);
#else
  return std::exp(x);
#endif
}

// Keys per tile: 32 up to head_dim 64, 16 up to 128, 8 up to 256: at most 28 KiB of shared
// memory at head_dim 128 (two blocks per SM even on a T4's 64 KiB), 35 KiB at 256.
TESSERA_HD constexpr int64_t key_tile(int64_t d) { return d <= 64 ? 32 : d <= 128 ? 16 : 8; }
TESSERA_HD constexpr int64_t row_stride(int64_t d) { return d + kPad; }
// Shared memory of one block in floats: q [kRows, stride], k and v [tile, stride], p [kRows,
// tile], the partial maxima and sums [kRows, kKeyGroups] each, m, l and corr [kRows] each.
TESSERA_HD constexpr int64_t shared_floats(int64_t d) {
  const int64_t kt = key_tile(d), st = row_stride(d);
  return kRows * st + 2 * kt * st + kRows * kt + 2 * kRows * kKeyGroups + 3 * kRows;
}

static_assert(key_tile(64) * 64 <= kThreads * kMaxLoads && key_tile(128) * 128 <=
              kThreads * kMaxLoads && key_tile(kMaxHeadDim) * kMaxHeadDim <= kThreads * kMaxLoads,
              "a K tile must fit the threads' load registers");
static_assert(kThreads % key_tile(64) == 0 && kThreads % key_tile(128) == 0 &&
              kThreads % key_tile(kMaxHeadDim) == 0, "loads: whole threads per key");
static_assert(key_tile(64) <= kKeyGroups * kMaxKeysPerThread, "scores: keys per thread");

struct Geometry {
  int64_t heads = 0, kv_heads = 0, d = 0, block_size = 0;
  float scale = 1.0f;
  int64_t window = 0;  // > 0: keys at positions > position - window only
};

struct BatchIndex {  // the batch's arrays (device pointers on the GPU)
  const int32_t* positions = nullptr;     // [n]
  const int32_t* seq_begin = nullptr;     // [num_seqs + 1]
  const int32_t* block_tables = nullptr;  // [num_seqs, table_stride]
  int64_t num_tokens = 0, num_seqs = 0, table_stride = 0;
};

// Launch geometry: grid (token_blocks, kv_heads * head_chunks, splits).
struct Plan {
  int64_t tokens_per_block = 1, heads_per_block = 1, head_chunks = 1, token_blocks = 1;
  int64_t splits = 1, split_len = 0;  // split z takes key positions [z * len, (z + 1) * len)
};

// Decode batches (n == num_seqs) take one token a block and split the context so that about
// two blocks per SM run, each split at least 4 key tiles, the partials (n * heads * splits *
// (d + 2) floats) within partial_floats. Others take kRows / heads_per_block tokens a block.
// max_keys: table_stride * block_size, the most keys a sequence of this batch can have.
inline Plan plan_tiles(int64_t n, int64_t num_seqs, int64_t heads, int64_t kv_heads, int64_t d,
                       int64_t max_keys, int64_t sm_count, int64_t partial_floats) {
  Plan p;
  const int64_t group = heads / kv_heads;
  p.heads_per_block = tmin<int64_t>(group, kRows);
  p.head_chunks = (group + p.heads_per_block - 1) / p.heads_per_block;
  const bool decode = n == num_seqs;
  p.tokens_per_block = decode ? 1 : tmax<int64_t>(1, kRows / p.heads_per_block);
  p.token_blocks = (n + p.tokens_per_block - 1) / p.tokens_per_block;
  p.split_len = tmax<int64_t>(max_keys, 1);
  if (!decode) return p;
  const int64_t kt = key_tile(d), blocks = n * kv_heads * p.head_chunks;
  int64_t splits = (2 * sm_count + blocks - 1) / blocks;
  splits = tmin(splits, (max_keys + 4 * kt - 1) / (4 * kt));
  const int64_t per_split = n * heads * (d + 2);
  splits = tmin(splits, per_split > 0 ? partial_floats / per_split : 1);
  if (splits <= 1) return p;
  const int64_t len = (max_keys + splits - 1) / splits;
  p.split_len = (len + kt - 1) / kt * kt;
  p.splits = (max_keys + p.split_len - 1) / p.split_len;
  return p;
}

// One thread's registers across phases, for key tile KT (head_dim up to kThreads * kMaxLoads
// / KT).
template <int KT> struct Regs {
  static constexpr int kAcc = kRows * (kThreads * kMaxLoads / KT) / kThreads;
  float acc[kAcc];                  // output elements tid + kThreads * a of [kRows, d]
  float s[kMaxKeysPerThread];       // scores of the thread's keys in the current tile
  int first = 1, last = 0;          // keys its score row sees (first > last: none)
};

struct alignas(16) F4 { float x, y, z, w; };

// (r, i) of element e of a [rows, d] array -> those of e + kThreads, without a division.
TESSERA_HD void step_element(int d, int& r, int& i) {
  i += kThreads;
  while (i >= d) {
    i -= d;
    ++r;
  }
}

// a . b over d floats of shared memory. Rows start 16-byte aligned when d % 4 == 0 (stride d
// + 4): 16-byte reads then, and four partial sums for the FMA latency.
TESSERA_HD float dot_row(const float* a, const float* b, int d) {
  if (d % 4 != 0) {
    float s = 0.0f;
    for (int i = 0; i < d; ++i) s += a[i] * b[i];
    return s;
  }
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  for (int i = 0; i < d; i += 4) {
#if defined(__CUDA_ARCH__)  // one 16-byte shared load each (the host reads the same floats)
    const F4 u = *reinterpret_cast<const F4*>(a + i), v = *reinterpret_cast<const F4*>(b + i);
#else
    const F4 u{a[i], a[i + 1], a[i + 2], a[i + 3]}, v{b[i], b[i + 1], b[i + 2], b[i + 3]};
#endif
    s0 += u.x * v.x;
    s1 += u.y * v.y;
    s2 += u.z * v.z;
    s3 += u.w * v.w;
  }
  return (s0 + s1) + (s2 + s3);
}

// The sequence of token t: the last s with seq_begin[s] <= t.
TESSERA_HD int64_t sequence_of(const BatchIndex& b, int64_t t) {
  int64_t lo = 0, hi = b.num_seqs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (b.seq_begin[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

TESSERA_HD int64_t first_key(const Geometry& g, int64_t pos) {
  return g.window > 0 ? tmax<int64_t>(0, pos - g.window + 1) : 0;
}

// Calls fn(std::integral_constant<int, key_tile(d)>{}): the tile as a constant, so the
// loads' offsets are immediates.
template <class Fn> void with_key_tile(int64_t d, Fn&& fn) {
  if (key_tile(d) == 32) return fn(std::integral_constant<int, 32>{});
  if (key_tile(d) == 16) return fn(std::integral_constant<int, 16>{});
  return fn(std::integral_constant<int, 8>{});
}

// One block (bx, by, bz) with KT = key_tile(g.d). Accessors: q(token, head, i) -> float;
// kv.k(row, i) / kv.v(row, i) -> float for cache row ((block * kv_heads + kv head) *
// block_size + offset), dequantized; out.write(token, head, i, value) the normalised output
// (splits == 1), out.partial(token, head, z, i, value) and out.partial_ml(token, head, z, m,
// l) the split's unnormalised sums.
template <int KT, class Exec, class QAcc, class KvAcc, class Out>
TESSERA_HD void attention_block(Exec& ex, float* sh, const Geometry& g, const BatchIndex& b,
                                const Plan& pl, int64_t bx, int64_t by, int64_t bz,
                                const QAcc& q, const KvAcc& kv, const Out& out) {
  // Tile-local indices are int (32-bit arithmetic on the GPU); cache rows are int64.
  constexpr int kt = KT;  // == key_tile(d): with_key_tile picks the instance
  const int d = int(g.d), st = int(row_stride(d));
  const int64_t group = g.heads / g.kv_heads;
  float* sq = sh;                                // [kRows, st], q * scale
  float* sk = sq + kRows * st;                   // [kt, st]
  float* sv = sk + kt * st;                      // [kt, st]
  float* sp = sv + kt * st;                      // [kRows, kt] probabilities
  float* red_max = sp + kRows * kt;              // [kRows, kKeyGroups]
  float* red_sum = red_max + kRows * kKeyGroups;  // [kRows, kKeyGroups]
  float* sm = red_sum + kRows * kKeyGroups;      // [kRows] running max
  float* sl = sm + kRows;                        // [kRows] running sum
  float* corr = sl + kRows;                      // [kRows] this tile's rescale

  const int64_t kvh = by / pl.head_chunks, head0 = (by % pl.head_chunks) * pl.heads_per_block;
  const int hb = int(tmin(pl.heads_per_block, group - head0));  // heads of this block
  const int64_t t_begin = bx * pl.tokens_per_block;
  const int64_t t_end = tmin(t_begin + pl.tokens_per_block, b.num_tokens);
  const int rows = int(t_end - t_begin) * hb;
  const int z_begin = int(bz * pl.split_len), z_last = int(z_begin + pl.split_len - 1);

  for (int64_t seg = t_begin; seg < t_end;) {  // runs of tokens of one sequence
    const int64_t seq = sequence_of(b, seg);
    const int64_t seg_end = tmin<int64_t>(t_end, b.seq_begin[seq + 1]);
    int lo = z_last + 1, hi = z_begin - 1;  // keys any row of the run sees, in the split
    for (int64_t t = seg; t < seg_end; ++t) {
      lo = tmin(lo, tmax(z_begin, int(first_key(g, b.positions[t]))));
      hi = tmax(hi, tmin(z_last, int(b.positions[t])));
    }
    const int32_t* table = b.block_tables + seq * b.table_stride;
    // Row r: token t_begin + r / hb, query head kvh * group + head0 + r % hb.
    const auto in_run = [&](int r) {
      const int64_t t = t_begin + r / hb;
      return r < rows && t >= seg && t < seg_end;
    };

    ex.each([&](int tid, auto& R) {
      for (int e = tid; e < kRows * d; e += kThreads) {
        const int r = e / d, i = e % d;
        sq[r * st + i] = in_run(r) ? q(t_begin + r / hb, kvh * group + head0 + r % hb, i) *
                                         g.scale : 0.0f;
      }
      if (tid < kRows) { sm[tid] = -INFINITY; sl[tid] = 0.0f; }
      TESSERA_UNROLL
      for (int i = 0; i < R.kAcc; ++i) R.acc[i] = 0.0f;
      const int r = tid / kKeyGroups;
      R.first = 1;
      R.last = 0;
      if (in_run(r)) {
        const int pos = b.positions[t_begin + r / hb];
        R.first = tmax(lo, int(first_key(g, pos)));
        R.last = tmin(hi, pos);
      }
    });

    for (int j0 = lo; j0 <= hi; j0 += kt) {
      ex.each([&](int tid, auto&) {  // K and V rows j0 .. j0 + kt - 1 (zeros past hi)
        // Thread tid loads key tid / per_key, elements tid % per_key + per_key u: one cache
        // row a thread, neighbours on neighbouring elements; all loads first, then the stores
        // (2 * kMaxLoads reads in flight).
        const int per_key = kThreads / kt, kk = tid / per_key, c0 = tid % per_key, j = j0 + kk;
        float kx[kMaxLoads], vx[kMaxLoads];
        const bool live = j <= hi;
        const int bs = int(g.block_size);  // 32-bit division
        const int64_t row =
            live ? (int64_t(table[j / bs]) * g.kv_heads + kvh) * bs + j % bs : 0;
        TESSERA_UNROLL
        for (int u = 0; u < kMaxLoads; ++u) {
          const int i = c0 + per_key * u;
          kx[u] = live && i < d ? kv.k(row, i) : 0.0f;
          vx[u] = live && i < d ? kv.v(row, i) : 0.0f;
        }
        TESSERA_UNROLL
        for (int u = 0; u < kMaxLoads; ++u) {
          const int i = c0 + per_key * u;
          if (i >= d) break;
          sk[kk * st + i] = kx[u];
          sv[kk * st + i] = vx[u];
        }
      });
      ex.each([&](int tid, auto& R) {  // scores of row tid / 8, keys tid % 8 + 8 jj
        const int r = tid / kKeyGroups, kg = tid % kKeyGroups;
        float mx = -INFINITY;
        TESSERA_UNROLL
        for (int jj = 0; jj < kMaxKeysPerThread; ++jj) {
          const int kk = kg + kKeyGroups * jj, j = j0 + kk;
          float s = -INFINITY;
          if (kk < kt && j >= R.first && j <= R.last) {
            s = dot_row(sq + r * st, sk + kk * st, d);
          }
          R.s[jj] = s;
          mx = tmax(mx, s);
        }
        red_max[r * kKeyGroups + kg] = mx;
      });
      ex.each([&](int tid, auto& R) {  // probabilities against the row's new maximum
        const int r = tid / kKeyGroups, kg = tid % kKeyGroups;
        float m_new = sm[r];
        for (int w = 0; w < kKeyGroups; ++w) m_new = tmax(m_new, red_max[r * kKeyGroups + w]);
        float sum = 0.0f;
        TESSERA_UNROLL
        for (int jj = 0; jj < kMaxKeysPerThread; ++jj) {
          const int kk = kg + kKeyGroups * jj;
          if (kk >= kt) continue;
          const float p = R.s[jj] == -INFINITY ? 0.0f : tile_exp(R.s[jj] - m_new);
          sp[r * kt + kk] = p;
          sum += p;
        }
        red_sum[r * kKeyGroups + kg] = sum;
      });
      ex.each([&](int tid, auto&) {  // one thread a row: running max, sum, rescale
        if (tid >= kRows) return;
        float m_new = sm[tid], sum = 0.0f;
        for (int w = 0; w < kKeyGroups; ++w) {
          m_new = tmax(m_new, red_max[tid * kKeyGroups + w]);
          sum += red_sum[tid * kKeyGroups + w];
        }
        const float c = sm[tid] == -INFINITY ? 0.0f : tile_exp(sm[tid] - m_new);
        sl[tid] = sl[tid] * c + sum;
        sm[tid] = m_new;
        corr[tid] = c;
      });
      ex.each([&](int tid, auto& R) {  // acc = acc * corr + p v
        int r = tid / d, i = tid % d;  // element tid + kThreads * a: stepped, not divided
        TESSERA_UNROLL
        for (int a = 0; a < R.kAcc; ++a, step_element(d, r, i)) {
          if (r >= rows) break;  // r grows with a
          float x = R.acc[a] * corr[r];
          for (int kk = 0; kk < kt; ++kk) x += sp[r * kt + kk] * sv[kk * st + i];
          R.acc[a] = x;
        }
      });
    }

    ex.each([&](int tid, auto& R) {  // the run's rows out
      int r = tid / d, i = tid % d;
      TESSERA_UNROLL
      for (int a = 0; a < R.kAcc; ++a, step_element(d, r, i)) {
        if (r >= rows) break;  // r grows with a
        if (!in_run(r)) continue;
        const int64_t t = t_begin + r / hb, h = kvh * group + head0 + r % hb;
        if (pl.splits == 1) {
          out.write(t, h, i, sl[r] > 0.0f ? R.acc[a] / sl[r] : 0.0f);
        } else {
          out.partial(t, h, bz, i, R.acc[a]);
          if (i == 0) out.partial_ml(t, h, bz, sm[r], sl[r]);
        }
      }
    });
    seg = seg_end;
  }
}

// Merges the splits of one (token, head): ml[2 z] = m, ml[2 z + 1] = l and o[z * d + i] as
// written by attention_block; returns output element i.
TESSERA_HD float combine_splits(const float* ml, const float* o, int64_t splits, int64_t d,
                                int64_t i) {
  float mx = -INFINITY;
  for (int64_t z = 0; z < splits; ++z)
    if (ml[2 * z + 1] > 0.0f) mx = tmax(mx, ml[2 * z]);
  float num = 0.0f, den = 0.0f;
  for (int64_t z = 0; z < splits; ++z) {
    if (!(ml[2 * z + 1] > 0.0f)) continue;  // a split past the context: no keys
    const float w = tile_exp(ml[2 * z] - mx);
    num += o[z * d + i] * w;
    den += ml[2 * z + 1] * w;
  }
  return den > 0.0f ? num / den : 0.0f;
}

}  // namespace tessera::tiles
