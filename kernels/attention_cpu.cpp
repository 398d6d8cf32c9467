#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_avx512.h"
#include "kernels/matmul.h"
#include "kernels/vector_avx512.h"

namespace tessera {

namespace {

void check_cache(const PagedKv& c, const char* op) {
  if (c.dtype == DType::F32 || (c.dtype == DType::I8 && c.k_scale && c.v_scale)) return;
  throw std::invalid_argument(std::string(op) + ": the cache must be F32, or I8 with scales, not " +
                              dtype_name(c.dtype));
}

// dots[g * stride + j] = q[g] . k[j] for the G heads and `keys` rows [keys, d] of F32 values
// or I8 codes (the portable twin of AttentionSimd::gqa_dots; simd: the CPU's build of it).
void gqa_dots(const float* q, int64_t G, const void* k, bool i8, int64_t keys, int64_t d,
              float* dots, int64_t stride, const AttentionSimd* simd) {
  if (simd) return simd->gqa_dots(q, G, k, i8, keys, d, dots, stride);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < keys; ++j) {
      float s = 0.0f;
      for (int64_t i = 0; i < d; ++i)
        s += q[g * d + i] * (i8 ? float(static_cast<const int8_t*>(k)[j * d + i])
                                : static_cast<const float*>(k)[j * d + i]);
      dots[g * stride + j] = s;
    }
}

// acc[g] += sum_j w[g * stride + j] * v[j] (the portable twin of
// AttentionSimd::gqa_accumulate).
void gqa_accumulate(const float* w, int64_t stride, int64_t G, const void* v, bool i8,
                    int64_t keys, int64_t d, float* acc, const AttentionSimd* simd) {
  if (simd) return simd->gqa_accumulate(w, stride, G, v, i8, keys, d, acc);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < keys; ++j)
      for (int64_t i = 0; i < d; ++i)
        acc[g * d + i] += w[g * stride + j] * (i8 ? float(static_cast<const int8_t*>(v)[j * d + i])
                                                  : static_cast<const float*>(v)[j * d + i]);
}

float exp_shift_sum(float* x, int64_t n, float shift, const VectorSimd* vec) {
  if (vec) return vec->exp_shift_sum(x, n, shift);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

}  // namespace

float quantize_kv_row(const float* x, int64_t d, int8_t* q) {
  float mx = 0.0f;
  for (int64_t i = 0; i < d; ++i) mx = std::max(mx, std::fabs(x[i]));
  const float s = mx / 127.0f;
  for (int64_t i = 0; i < d; ++i)  // nearbyint: round half to even (the default FP mode)
    q[i] = s == 0.0f ? int8_t(0)
                     : int8_t(std::clamp(std::nearbyint(x[i] / s), -127.0f, 127.0f));
  return s;
}

void kv_write_cpu(const float* k, const float* v, int64_t n, const int32_t* slots,
                  const PagedKv& c) {
  check_cache(c, "kv_write_cpu");
  const int64_t d = c.head_dim;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t block = slots[t] / c.block_size, off = slots[t] % c.block_size;
    for (int64_t h = 0; h < c.kv_heads; ++h) {
      const int64_t row = (block * c.kv_heads + h) * c.block_size + off;
      const int64_t src = (t * c.kv_heads + h) * d;
      if (c.dtype == DType::I8) {
        c.k_scale[row] = quantize_kv_row(k + src, d, static_cast<int8_t*>(c.k) + row * d);
        c.v_scale[row] = quantize_kv_row(v + src, d, static_cast<int8_t*>(c.v) + row * d);
      } else {
        std::memcpy(static_cast<float*>(c.k) + row * d, k + src, size_t(d) * sizeof(float));
        std::memcpy(static_cast<float*>(c.v) + row * d, v + src, size_t(d) * sizeof(float));
      }
    }
  }
}

namespace {

// A (token, kv head)'s keys are attended in parts of kPartKeys: each part gives a partial
// softmax per query head (its max m, its sum l of exp(score - m), its output acc weighted by
// those exps, not yet divided by l), folded into the running total in order. Parts bound the
// scratch, and they are the unit of parallel work when a batch has few (token, kv head)
// pairs: decode of one sequence has only kv_heads pairs, so its context is split over the
// threads (flash-decoding). The split depends on the batch alone, never on the thread count.
constexpr int64_t kPartKeys = 256;
constexpr int64_t kFewPairs = 64;      // below: split contexts into items
constexpr int64_t kTargetItems = 256;  // ... about this many in all

struct Attend {  // one call's constants
  const PagedKv& c;
  const Batch& b;
  const float* q;                 // [n, heads, d]
  std::vector<int32_t> seq_of;    // [n] each token's sequence
  std::vector<int64_t> first;     // [n] each token's first key position (sliding window)
  int64_t heads, G, d;
  float scale;
  bool i8;
  const AttentionSimd* simd;  // the SIMD builds of the dot products and the exp (for this
  const VectorSimd* vec;      // CPU: kernels/simd_target.h); nullptr: portable

  int64_t keys(int64_t t) const { return b.positions[size_t(t)] + 1 - first[size_t(t)]; }
  int64_t parts(int64_t t) const { return (keys(t) + kPartKeys - 1) / kPartKeys; }
  size_t state_floats() const { return size_t(G * (d + 2)); }  // m [G], l [G], acc [G, d]
  size_t row_bytes() const { return size_t(d) * (i8 ? 1 : sizeof(float)); }
};

// Calls fn(at, row, data, run) for keys [lo, hi) of token t in runs inside one cache block
// (where a kv head's rows are contiguous [block_size, d]); at counts from lo, row is the first
// row's index (for the I8 scales) and data its address in `rows`.
// Blocks lie anywhere in the cache, so the hardware prefetcher cannot guess the next one:
// while a run is worked on, the next block's rows of `rows` (the K or V cache) are fetched
// (measured, bench/attention_bench, Qwen2.5-7B shape at 4096 tokens, 2 threads: F32 45 -> 35
// ms per step, I8 28 -> 17 ms; two blocks ahead was no better).
template <class Fn>
void for_each_run(const Attend& a, int64_t t, int64_t kvh, int64_t lo, int64_t hi,
                  const void* rows, Fn&& fn) {
  const int64_t bs = a.c.block_size;
  const int32_t* table = a.b.block_table(a.seq_of[size_t(t)]);
  const size_t row_bytes = a.row_bytes();
  auto first_row = [&](int64_t block) { return (int64_t(table[block]) * a.c.kv_heads + kvh) * bs; };
  for (int64_t j = lo; j < hi;) {
    const int64_t off = j % bs, run = std::min(bs - off, hi - j);
    if (j / bs + 1 < (hi + bs - 1) / bs) {  // the next block holds keys of this range
      const char* next = static_cast<const char*>(rows) + size_t(first_row(j / bs + 1)) * row_bytes;
      for (size_t x = 0; x < size_t(bs) * row_bytes; x += 64) __builtin_prefetch(next + x);
    }
    const int64_t row = first_row(j / bs) + off;
    fn(j - lo, row, static_cast<const char*>(rows) + size_t(row) * row_bytes, run);
    j += run;
  }
}

// The G heads' partial over keys [lo, hi) into state [m G | l G | acc G x d]; p is scratch
// [G, kPartKeys] (scores, then their exps, then the exps times the V rows' scales).
void attend_part(const Attend& a, int64_t t, int64_t kvh, int64_t lo, int64_t hi, float* state,
                 float* p) {
  const PagedKv& c = a.c;
  const int64_t G = a.G, d = a.d, count = hi - lo, S = kPartKeys;
  const float* q = a.q + (t * a.heads + kvh * G) * d;  // the G heads of kv head kvh
  for_each_run(a, t, kvh, lo, hi, c.k, [&](int64_t at, int64_t row, const char* k, int64_t run) {
    gqa_dots(q, G, k, a.i8, run, d, p + at, S, a.simd);
    for (int64_t g = 0; g < G; ++g) {
      float* sc = p + g * S + at;
      if (a.i8)
        for (int64_t j = 0; j < run; ++j) sc[j] *= a.scale * c.k_scale[row + j];
      else
        for (int64_t j = 0; j < run; ++j) sc[j] *= a.scale;
    }
  });
  float *m = state, *l = state + G, *acc = state + 2 * G;
  for (int64_t g = 0; g < G; ++g) {
    m[g] = *std::max_element(p + g * S, p + g * S + count);
    l[g] = exp_shift_sum(p + g * S, count, m[g], a.vec);
  }
  std::fill(acc, acc + G * d, 0.0f);
  for_each_run(a, t, kvh, lo, hi, c.v, [&](int64_t at, int64_t row, const char* v, int64_t run) {
    if (a.i8)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t j = 0; j < run; ++j) p[g * S + at + j] *= c.v_scale[row + j];
    gqa_accumulate(p + at, S, G, v, a.i8, run, d, acc, a.simd);
  });
}

// total = total (+) part: the softmax of their keys together (both [m G | l G | acc G x d]).
void fold(int64_t G, int64_t d, float* total, const float* part) {
  for (int64_t g = 0; g < G; ++g) {
    const float mx = std::max(total[g], part[g]);
    const float wt = std::exp(total[g] - mx), wp = std::exp(part[g] - mx);
    total[g] = mx;
    total[G + g] = total[G + g] * wt + part[G + g] * wp;
    float* acc = total + 2 * G + g * d;
    const float* add = part + 2 * G + g * d;
    for (int64_t i = 0; i < d; ++i) acc[i] = acc[i] * wt + add[i] * wp;
  }
}

// Parts [p0, p1) of token t's keys, folded in order into state (scratch: part [state], p).
void attend_parts(const Attend& a, int64_t t, int64_t kvh, int64_t p0, int64_t p1,
                  float* state, float* part, float* p) {
  const int64_t end = a.b.positions[size_t(t)] + 1;
  for (int64_t k = p0; k < p1; ++k) {
    const int64_t lo = a.first[size_t(t)] + k * kPartKeys, hi = std::min(lo + kPartKeys, end);
    attend_part(a, t, kvh, lo, hi, k == p0 ? state : part, p);
    if (k > p0) fold(a.G, a.d, state, part);
  }
}

// out rows of the G heads of (t, kvh) = acc / l.
void write_out(const Attend& a, int64_t t, int64_t kvh, const float* state, float* out) {
  for (int64_t g = 0; g < a.G; ++g) {
    const float inv = 1.0f / state[a.G + g];
    float* o = out + (t * a.heads + kvh * a.G + g) * a.d;
    for (int64_t i = 0; i < a.d; ++i) o[i] = state[2 * a.G + g * a.d + i] * inv;
  }
}

void paged_attention(const float* q, int64_t heads, const PagedKv& c, const Batch& b,
                     float scale, int64_t window, float* out, const AttentionSimd* simd,
                     const VectorSimd* vec) {
  check_cache(c, "paged_attention_cpu");
  const int64_t n = b.num_tokens();
  Attend a{c, b, q, {}, {}, heads, heads / c.kv_heads, c.head_dim, scale,
           c.dtype == DType::I8, simd, vec};
  a.seq_of.resize(size_t(n));
  a.first.resize(size_t(n));
  for (int64_t s = 0; s < b.num_seqs(); ++s)
    for (int32_t t = b.seq_begin[size_t(s)]; t < b.seq_begin[size_t(s) + 1]; ++t) {
      a.seq_of[size_t(t)] = int32_t(s);
      const int64_t pos = b.positions[size_t(t)];
      a.first[size_t(t)] = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
    }
  const int64_t pairs = n * c.kv_heads, kvh_n = c.kv_heads;
  const size_t sf = a.state_floats();
  if (pairs >= kFewPairs) {  // enough pairs: one per work item
#pragma omp parallel
    {
      std::vector<float> state(sf), part(sf), p(size_t(a.G * kPartKeys));
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < pairs; ++i) {
        const int64_t t = i / kvh_n, kvh = i % kvh_n;
        attend_parts(a, t, kvh, 0, a.parts(t), state.data(), part.data(), p.data());
        write_out(a, t, kvh, state.data(), out);
      }
    }
    return;
  }
  // Few pairs: each pair's parts in `chunks` items of consecutive parts, then folded in order.
  const int64_t chunks_max = (kTargetItems + pairs - 1) / pairs;
  std::vector<int64_t> begin(size_t(pairs) + 1, 0);  // pair i's items [begin[i], begin[i+1])
  for (int64_t i = 0; i < pairs; ++i)
    begin[size_t(i) + 1] = begin[size_t(i)] + std::min(chunks_max, a.parts(i / kvh_n));
  std::vector<float> states(size_t(begin.back()) * sf);
#pragma omp parallel
  {
    std::vector<float> part(sf), p(size_t(a.G * kPartKeys));
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < begin.back(); ++it) {
      const int64_t i = std::upper_bound(begin.begin(), begin.end(), it) - begin.begin() - 1;
      const int64_t t = i / kvh_n, kvh = i % kvh_n, parts = a.parts(t);
      const int64_t chunks = begin[size_t(i) + 1] - begin[size_t(i)], k = it - begin[size_t(i)];
      attend_parts(a, t, kvh, parts * k / chunks, parts * (k + 1) / chunks,
                   states.data() + size_t(it) * sf, part.data(), p.data());
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < pairs; ++i) {
      float* total = states.data() + size_t(begin[size_t(i)]) * sf;
      for (int64_t it = begin[size_t(i)] + 1; it < begin[size_t(i) + 1]; ++it)
        fold(a.G, a.d, total, states.data() + size_t(it) * sf);
      write_out(a, i / kvh_n, i % kvh_n, total, out);
    }
  }
}

}  // namespace

void paged_attention_cpu(const float* q, int64_t heads, const PagedKv& c, const Batch& b,
                         float scale, int64_t window, float* out) {
  paged_attention(q, heads, c, b, scale, window, out,
                  simd_kernels(kAttentionAvx512, kAttentionAvx2),
                  simd_kernels(kVectorAvx512, kVectorAvx2));
}

void paged_attention_cpu_portable(const float* q, int64_t heads, const PagedKv& c,
                                  const Batch& b, float scale, int64_t window, float* out) {
  paged_attention(q, heads, c, b, scale, window, out, nullptr, nullptr);
}

}  // namespace tessera
