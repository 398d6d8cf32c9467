// The tensor-core paged attention for prefill of the CUDA backend (kernels/attention_mma.cu),
// written once for the GPU and for a host emulation (tests/kernel_attention_mma_test.cpp runs
// it in the CPU build against paged_attention_cpu). A flash-attention over the paged cache:
// q k^T and p v are 16x16x16 matrix products (WMMA on the GPU) of fp16 tiles in shared
// memory with fp32 accumulation; the online softmax is fp32.
//
// One block of 4 warps computes kRows = 64 query rows, (token, query head) pairs of one
// sequence's tokens and one kv head's query heads (warp w: rows 16 w .. 16 w + 15), over
// tiles of kKeys keys. Its body is phases between block barriers: Exec::threads(f) runs
// f(thread) for every thread; Exec::warps(f) runs f(warp, warp registers) for every warp, a
// warp's lanes together (the matrix operations are collective); inside it Exec::lanes(f)
// runs f(lane) for every lane between warp barriers. The matrix operations come from a policy
// M (WMMA fragments on the GPU, whole 16x16 tiles on the host): M::E the tile element, zero,
// load_a (row-major A), load_b_col / load_b_row (B from a column- / row-major array), load_acc,
// mma (c += a b), store (row-major), gather_rows(g, rows, f) (g[r][j] = f[rows[r][j]]: an
// accumulator's element-to-row map is not specified on the GPU, so a tile of row indices
// loaded into an accumulator gives it), scale(c, g) (c *= g element-wise), to_e / from_e.
#pragma once
#include <climits>

#include "kernels/attention_tiles.h"

namespace tessera::mma_tiles {

using tiles::BatchIndex;
using tiles::Geometry;
using tiles::tmax;
using tiles::tmin;

constexpr int kThreads = 128, kWarps = 4, kLanes = 32;
constexpr int kRows = 64;  // query rows a block, 16 a warp
constexpr int kKeys = 32;  // keys a tile: two 16-key column tiles of the scores
constexpr int kMaxHeadDim = 128;
constexpr int kMaxFrags = kMaxHeadDim / 16;
// Row strides are multiples of 32 bytes, as the PTX ISA asks of WMMA rows ("Matrix Storage
// for WMMA"; the CUDA C++ guide only asks 16).
constexpr int kEPad = 16;        // E elements after each staged row (fp16: 32 bytes)
constexpr int kLdS = kKeys + 8;  // floats a score row (a row's probabilities overwrite it as E)
constexpr int kChunk = 8;        // cache elements a thread loads at once (16 bytes of fp16)
constexpr int kMaxChunks = kKeys * kMaxHeadDim / kChunk / kThreads;  // a thread's, K or V

// Head dims this kernel takes: whole 16-wide fragments, q and the output in registers.
TESSERA_HD constexpr bool supports_head_dim(int64_t d) {
  return d > 0 && d % 16 == 0 && d <= kMaxHeadDim;
}
TESSERA_HD constexpr int64_t e_stride(int64_t d) { return d + kEPad; }
// Shared memory in bytes for element size e: [kRows, e_stride] E (q staging, then the key
// tile's K [kKeys, e_stride] and V [kKeys, e_stride]), scores [kRows, kLdS] F32, then the
// running max, sum and rescale (F32) and each row's first and last key (int32), [kRows] each.
// 29,952 bytes at head_dim 128 in fp16: two blocks an SM even on a T4's 64 KiB.
TESSERA_HD constexpr int64_t shared_bytes(int64_t d, int64_t e_size) {
  return kRows * e_stride(d) * e_size + kRows * kLdS * 4 + 5 * kRows * 4;
}

// Launch geometry: grid (blocks_x, kv_heads * head_chunks).
struct Plan {
  int64_t heads_per_block = 1, head_chunks = 1, tokens_per_block = 1, blocks_x = 1;
};

inline Plan plan_mma(int64_t n, int64_t num_seqs, int64_t heads, int64_t kv_heads) {
  Plan p;
  const int64_t group = heads / kv_heads;
  p.heads_per_block = tmin<int64_t>(group, kRows);
  p.head_chunks = (group + p.heads_per_block - 1) / p.heads_per_block;
  p.tokens_per_block = kRows / p.heads_per_block;
  p.blocks_x = n / p.tokens_per_block + num_seqs;
  return p;
}

// Blocks never span two sequences: sequence s owns blocks [c(s), c(s + 1)) with c(s) =
// seq_begin[s] / tpb + s, at least ceil(tokens / tpb) of them (floor(b / t) - floor(a / t) >=
// floor((b - a) / t)), and c(num_seqs) = blocks_x. Block x takes tokens [t_begin, t_end) of
// its sequence; false for a block past its sequence's tokens (at most one a sequence).
TESSERA_HD bool locate(const BatchIndex& b, int64_t tpb, int64_t x, int64_t& seq,
                       int64_t& t_begin, int64_t& t_end) {
  int64_t lo = 0, hi = b.num_seqs - 1;  // the last s with c(s) <= x (c increases)
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (b.seq_begin[mid] / tpb + mid <= x) lo = mid; else hi = mid - 1;
  }
  seq = lo;
  t_begin = b.seq_begin[lo] + (x - (b.seq_begin[lo] / tpb + lo)) * tpb;
  t_end = tmin<int64_t>(t_begin + tpb, b.seq_begin[lo + 1]);
  return t_begin < t_end;
}

// A warp's registers across phases (on the GPU: each lane's part of the fragments).
template <class M> struct WarpRegs {
  typename M::A q[kMaxFrags];    // the warp's 16 q rows, 16 columns each
  typename M::Acc o[kMaxFrags];  // the warp's 16 output rows, unnormalised
  typename M::Acc rows;          // element -> its row (0..15), for scale_rows
};

// Block (bx, by) of plan_mma's grid. Accessors: q(token, head, i) -> float; kv.k8(row, i0) /
// kv.v8(row, i0) -> a Chunk of 8 elements of cache row ((block * kv_heads + kv head) *
// block_size + offset) from element i0, kv.none() a chunk of zeros, kv.put(E* dst, chunk)
// stores one as E; out.write(token, head, i, value).
template <class M, class Exec, class QAcc, class KvAcc, class Out>
TESSERA_HD void mma_attention_block(Exec& ex, const M& mm, unsigned char* smem,
                                    const Geometry& g, const BatchIndex& b, const Plan& pl,
                                    int64_t bx, int64_t by, const QAcc& q, const KvAcc& kv,
                                    const Out& out) {
  using E = typename M::E;
  using Chunk = typename KvAcc::Chunk;
  int64_t seq = 0, t_begin = 0, t_end = 0;
  if (!locate(b, pl.tokens_per_block, bx, seq, t_begin, t_end)) return;  // the whole block
  const int d = int(g.d), ld = int(e_stride(d)), nf = d / 16;
  const int ldp = kLdS * int(sizeof(float) / sizeof(E));  // E a probability row
  E* sk = reinterpret_cast<E*>(smem);                     // [kKeys, ld]; q staging [kRows, ld]
  E* sv = sk + kKeys * ld;                                // [kKeys, ld]
  float* ss = reinterpret_cast<float*>(smem + kRows * ld * sizeof(E));  // [kRows, kLdS]
  E* sp = reinterpret_cast<E*>(ss);  // probability row r at sp + r * ldp, inside score row r
  float* sm = ss + kRows * kLdS;     // [kRows] running max
  float* sl = sm + kRows;            // [kRows] running sum
  float* corr = sl + kRows;          // [kRows] this tile's rescale
  int* first = reinterpret_cast<int*>(corr + kRows);  // [kRows] keys row r sees
  int* last = first + kRows;

  const int64_t group = g.heads / g.kv_heads, kvh = by / pl.head_chunks;
  const int64_t head0 = (by % pl.head_chunks) * pl.heads_per_block;
  const int hb = int(tmin(pl.heads_per_block, group - head0));  // heads of this block
  const int rows = int(t_end - t_begin) * hb;  // row r: token t_begin + r / hb, head r % hb
  int lo = INT_MAX, hi = -1;                   // keys any row sees
  for (int64_t t = t_begin; t < t_end; ++t) {
    lo = tmin(lo, int(tiles::first_key(g, b.positions[t])));
    hi = tmax(hi, int(b.positions[t]));
  }
  const int32_t* table = b.block_tables + seq * b.table_stride;

  ex.threads([&](int tid) {  // q rows as E (zeros past `rows`), the rows' state
    for (int e = tid; e < kRows * d; e += kThreads) {
      const int r = e / d, i = e % d;
      sk[r * ld + i] =
          M::to_e(r < rows ? q(t_begin + r / hb, kvh * group + head0 + r % hb, i) : 0.0f);
    }
    if (tid < kRows) {
      sm[tid] = -INFINITY;
      sl[tid] = 0.0f;
      first[tid] = 1;  // first > last: no keys
      last[tid] = 0;
      if (tid < rows) {
        const int pos = b.positions[t_begin + tid / hb];
        first[tid] = int(tiles::first_key(g, pos));
        last[tid] = pos;
      }
    }
  });
  ex.warps([&](int w, WarpRegs<M>& W) {  // q fragments, zero outputs, the row map
    float* scratch = ss + 16 * w * kLdS;
    ex.lanes([&](int lane) {
      for (int e = lane; e < 256; e += kLanes) scratch[(e / 16) * kLdS + e % 16] = float(e / 16);
    });
    mm.load_acc(W.rows, scratch, kLdS);
    TESSERA_UNROLL
    for (int f = 0; f < kMaxFrags; ++f) {
      if (f >= nf) break;
      mm.load_a(W.q[f], sk + 16 * w * ld + 16 * f, ld);
      mm.zero(W.o[f]);
    }
  });

  const int bs = int(g.block_size), per_row = d / kChunk;
  for (int j0 = lo; j0 <= hi; j0 += kKeys) {
    ex.threads([&](int tid) {  // K and V rows j0 .. j0 + kKeys - 1 as E (zeros past hi)
      Chunk kc[kMaxChunks], vc[kMaxChunks];  // all loads in flight before the stores
      TESSERA_UNROLL
      for (int u = 0; u < kMaxChunks; ++u) {
        const int c = tid + kThreads * u, kk = c / per_row, j = j0 + kk;
        const bool live = kk < kKeys && j <= hi;
        const int64_t row =
            live ? (int64_t(table[j / bs]) * g.kv_heads + kvh) * bs + j % bs : 0;
        kc[u] = live ? kv.k8(row, (c % per_row) * kChunk) : kv.none();
        vc[u] = live ? kv.v8(row, (c % per_row) * kChunk) : kv.none();
      }
      TESSERA_UNROLL
      for (int u = 0; u < kMaxChunks; ++u) {
        const int c = tid + kThreads * u, kk = c / per_row, i0 = (c % per_row) * kChunk;
        if (kk >= kKeys) break;  // kk grows with u
        kv.put(sk + kk * ld + i0, kc[u]);
        kv.put(sv + kk * ld + i0, vc[u]);
      }
    });
    ex.warps([&](int w, WarpRegs<M>& W) {
      float* srow = ss + 16 * w * kLdS;  // the warp's 16 score rows
      TESSERA_UNROLL
      for (int c = 0; c < kKeys / 16; ++c) {  // s = q k^T, 16 keys at a time
        typename M::Acc s;
        mm.zero(s);
        TESSERA_UNROLL
        for (int f = 0; f < kMaxFrags; ++f) {
          if (f >= nf) break;
          typename M::BCol kb;  // k^T: K rows are the columns
          mm.load_b_col(kb, sk + 16 * c * ld + 16 * f, ld);
          mm.mma(s, W.q[f], kb);
        }
        mm.store(srow + 16 * c, s, kLdS);
      }
      ex.lanes([&](int lane) {  // lane r < 16: row 16 w + r's probabilities, max, sum
        if (lane >= 16) return;
        const int r = 16 * w + lane, f0 = first[r], l0 = last[r];
        float x[kKeys], mx = sm[r];
        TESSERA_UNROLL
        for (int kk = 0; kk < kKeys; ++kk) {  // the whole score row, before p overwrites it
          const int j = j0 + kk;
          x[kk] = j >= f0 && j <= l0 ? ss[r * kLdS + kk] * g.scale : -INFINITY;
          mx = tmax(mx, x[kk]);
        }
        float sum = 0.0f;
        TESSERA_UNROLL
        for (int kk = 0; kk < kKeys; ++kk) {
          const E p = M::to_e(x[kk] == -INFINITY ? 0.0f : tiles::tile_exp(x[kk] - mx));
          sp[r * ldp + kk] = p;
          sum += M::from_e(p);  // the sum of the weights p v uses
        }
        const float c = sm[r] == -INFINITY ? 0.0f : tiles::tile_exp(sm[r] - mx);
        sl[r] = sl[r] * c + sum;
        sm[r] = mx;
        corr[r] = c;
      });
      typename M::A pa[kKeys / 16];
      TESSERA_UNROLL
      for (int c = 0; c < kKeys / 16; ++c) mm.load_a(pa[c], sp + 16 * w * ldp + 16 * c, ldp);
      typename M::Acc rescale;  // each element's row's corr, read once a tile
      mm.gather_rows(rescale, W.rows, corr + 16 * w);
      TESSERA_UNROLL
      for (int f = 0; f < kMaxFrags; ++f) {  // o = o * corr + p v
        if (f >= nf) break;
        mm.scale(W.o[f], rescale);
        TESSERA_UNROLL
        for (int c = 0; c < kKeys / 16; ++c) {
          typename M::BRow vb;
          mm.load_b_row(vb, sv + 16 * c * ld + 16 * f, ld);
          mm.mma(W.o[f], pa[c], vb);
        }
      }
    });
  }

  ex.warps([&](int w, WarpRegs<M>& W) {  // out = o / sum, 16 columns at a time
    float* srow = ss + 16 * w * kLdS;
    TESSERA_UNROLL
    for (int f = 0; f < kMaxFrags; ++f) {
      if (f >= nf) break;
      mm.store(srow, W.o[f], kLdS);
      ex.lanes([&](int lane) {  // lane: row lane / 2, columns (lane % 2) * 8 .. + 7
        const int rr = lane / 2, r = 16 * w + rr, c0 = (lane % 2) * 8;
        if (r >= rows) return;
        const int64_t t = t_begin + r / hb, h = kvh * group + head0 + r % hb;
        const float l = sl[r];
        for (int c = 0; c < 8; ++c)
          out.write(t, h, 16 * f + c0 + c, l > 0.0f ? srow[rr * kLdS + c0 + c] / l : 0.0f);
      });
    }
  });
}

}  // namespace tessera::mma_tiles
