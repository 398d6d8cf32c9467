// The quantized decode GEMV on the GPU (quant_linear_cuda in quant_linear.cu calls it; see
// quant_matmul_cuda.h): kernels, then their launcher. Decode GEMV (M <= kQuantGemvMaxTokens) reads each weight byte once, by 16-byte loads issued
// a step ahead of the math (mma: and L2 prefetches), and converts codes without I2F (16/clk/SM on
// sm_75-90: half of H100's bandwidth for int4): code c in the low mantissa bits of a float or
// half of fixed exponent reads magic + c; one FADD/FFMA/HFMA2 with magic + zero leaves c - zero
// exactly. mma_gemv_kernel (F16 x, BF16 from sm_80; rows of 64k bytes; int4 groups of 128k):
// 16 rows a block, K split over its 8 warps, codes minus zero (exact in 16 bits) times x in
// mma.sync (exact products, F32 sums): the FP32 pipe and issue slots, int4's limit on H100 and
// H200, only dequantize; x is read once per block; 8 tokens cost what 1 does. fma_gemv_kernel
// (the rest): warp w owns row n, lane l reads 16-byte units l, l + 32, ... (words, or bytes,
// when rows or x are not 16-byte aligned); F32 FMAs.
#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/cuda_util.cuh"
#include "kernels/quant_matmul_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;
constexpr int kWarpsPerBlock = 8;
constexpr int kMaxTokens = int(kQuantGemvMaxTokens);
constexpr uint32_t kMagic = 0x4B000000u;      // the float 2^23: kMagic | c reads 2^23 + c
constexpr float kMagic8 = 8388608.f + 128.f;  // an int8 code + 128 under the magic

// x[0 .. 3] as F32 (p 4-element aligned); bf16 -> F32 is a shift (sm_75 has no bf16 math).
__device__ __forceinline__ void load4(const float* p, float* f) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
}
__device__ __forceinline__ void load4(const __half* p, float* f) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  f[0] = __half2float(__ushort_as_half(v.x)), f[1] = __half2float(__ushort_as_half(v.x >> 16));
  f[2] = __half2float(__ushort_as_half(v.y)), f[3] = __half2float(__ushort_as_half(v.y >> 16));
}
__device__ __forceinline__ void load4(const __nv_bfloat16* p, float* f) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  f[0] = __uint_as_float(v.x << 16), f[1] = __uint_as_float(v.x & 0xffff0000u);
  f[2] = __uint_as_float(v.y << 16), f[3] = __uint_as_float(v.y & 0xffff0000u);
}
__device__ __forceinline__ void prefetch_l2(const void* p) {  // DRAM -> L2 without registers
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;  // (a & b) | c in one LOP3 (the compiler spends two on two immediates)
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

// Word v's codes as floats. int8 (4): code + 128 (top bit flipped) byte-permuted under the
// magic. int4 (8, minus the zero): nibble j of a 16-bit half masked in place reads 2^23 + code
// * 16^j; one FFMA scales by 16^-j and adds zt[j] = -(2^(23 - 4j) + zero).
template <bool kInt4>
__device__ __forceinline__ void word_codes(uint32_t v, const float* zt, float* q) {
  for (int i = 0; i < (kInt4 ? 8 : 4); ++i)
    q[i] = kInt4 ? fmaf(__uint_as_float(and_or(i < 4 ? v : v >> 16, 0xFu << 4 * (i & 3), kMagic)),
                        1.f / float(1 << 4 * (i & 3)), zt[i & 3])
                 : __uint_as_float(__byte_perm(v ^ 0x80808080u, kMagic, 0x7440 | i)) - kMagic8;
}
struct GroupWalk {  // g = code / gs while code grows by a fixed step, without a division
  uint32_t g, rem, gs, dq, dr;
  __device__ GroupWalk(uint32_t code, uint32_t step, uint32_t gs_)
      : g(code / gs_), rem(code % gs_), gs(gs_), dq(step / gs_), dr(step % gs_) {}
  __device__ void next() { g += dq, rem += dr, g += rem >= gs, rem -= rem >= gs ? gs : 0; }
};

// x: [M, K]; w.q int8 [N, K] or int4 [N, K / 2] (int4 word c: inputs 8c + i in nibble i); y:
// [M, N]. A unit (kWords words) is in one int4 group (gs % kCodes == 0); vec: read the row and
// x by units (else bytes). Lane l takes units l, l + 32, ..., loading the next one first.
template <class T, class Y, bool kInt4, int kWords>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    fma_gemv_kernel(const T* __restrict__ x, int M, QuantMatrix w, bool vec,
                    const float* __restrict__ bias, Y* __restrict__ y) {
  constexpr int kPer = kInt4 ? 8 : 4, kBytes = 4 * kWords, kCodes = kPer * kWords;
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  if (n >= w.N) return;  // the whole warp leaves together
  const int64_t K = w.K, row_bytes = kInt4 ? K / 2 : K;
  const int units = vec ? int(row_bytes / kBytes) : 0;
  const uint32_t gs = kInt4 ? uint32_t(w.group_size) : 1u, G = (uint32_t(K) + gs - 1) / gs;
  const uint8_t* row = static_cast<const uint8_t*>(w.q) + n * row_bytes;
  const float* s = w.scales + (kInt4 ? n * G : n);
  const uint8_t* z = kInt4 ? reinterpret_cast<const uint8_t*>(w.zeros) + n * G : nullptr;
  using Vec = std::conditional_t<kWords == 4, uint4, unsigned>;
  struct Unit { Vec v; float s; uint32_t zb; };  // words, int4 scale and zero + 128
  GroupWalk grp(lane * kCodes, 32 * kCodes, gs);  // the group of the last unit loaded
  auto load = [&](int c) {  // unit c (read once: streaming loads) and its int4 scale, zero
    return Unit{__ldcs(reinterpret_cast<const Vec*>(row) + c), kInt4 ? __ldg(s + grp.g) : 1.f,
                kInt4 ? __ldg(z + grp.g) ^ 0x80u : 0u};
  };
  float acc[kMaxTokens] = {};
  Unit cur = lane < units ? load(lane) : Unit{};
  for (int c = lane; c < units; c += 32) {
    if (c + 32 < units) grp.next();
    const Unit nxt = load(c + 32 < units ? c + 32 : c);  // in flight during the math below
    float zt[4], d[kMaxTokens] = {};
    for (int j = 0; j < 4; ++j)  // int4: word_codes' zero terms (zb = zero + 128)
      zt[j] = (kMagic8 - float(1 << (23 - 4 * j))) - __uint_as_float(kMagic | cur.zb);
    for (int i = 0; i < kWords; ++i) {
      float q[kPer], xf[kPer];
      word_codes<kInt4>(reinterpret_cast<const uint32_t*>(&cur.v)[i], zt, q);
      for (int m = 0; m < kMaxTokens; ++m) {
        if (m >= M) break;
        for (int t = 0; t < kPer; t += 4) load4(x + m * K + c * kCodes + kPer * i + t, xf + t);
        for (int t = 0; t < kPer; ++t) d[m] = fmaf(xf[t], q[t], d[m]);
      }
    }
    for (int m = 0; m < kMaxTokens; ++m) acc[m] = fmaf(cur.s, d[m], acc[m]);
    cur = nxt;
  }
  for (int64_t j = int64_t(units) * kBytes + lane; j < row_bytes; j += 32) {  // byte by byte
    const uint32_t b = row[j], g = kInt4 ? uint32_t(2 * j) / gs : 0;  // 2j, 2j + 1: one group
    const float zt = kInt4 ? 128.f - __uint_as_float(kMagic | (z[g] ^ 0x80u)) : -kMagic8,
                sg = kInt4 ? s[g] : 1.f;
    const float q0 = (__uint_as_float(kMagic | (kInt4 ? b & 15u : b ^ 0x80u)) + zt) * sg;
    const float q1 = (__uint_as_float(kMagic | (b >> 4)) + zt) * sg;  // int4 only
    for (int m = 0; m < kMaxTokens; ++m)
      if (m < M)
        acc[m] += kInt4 ? to_f32(x[m * K + 2 * j]) * q0 + to_f32(x[m * K + 2 * j + 1]) * q1
                        : to_f32(x[m * K + j]) * q0;
  }
  for (int m = 0; m < kMaxTokens; ++m) {
    if (m >= M) break;
    const float v = warp_sum(kInt4 ? acc[m] : acc[m] * s[0]);
    if (lane == 0) y[m * w.N + n] = from_f32<Y>(v + (bias ? bias[n] : 0.0f));
  }
}

// d += A B (A 16 x 16, B 16 x 8: 16-bit pairs; d F32). Lane l = 4g + c holds A rows g (a0, a2)
// and g + 8 (a1, a3), B column g, d rows g, g + 8 x columns 2c, 2c + 1; a0, a1, b0 hold k = 2c,
// 2c + 1, a2, a3, b1 k = 2c + 8, 2c + 9 (PTX mma.m16n8k16; sm_75: two m16n8k8, F16 only).
#define TESSERA_MMA(shape, ty, regs, ...)                                                  \
  asm("mma.sync.aligned." shape ".row.col.f32." ty "." ty ".f32 {%0,%1,%2,%3}, " regs     \
      ", {%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : __VA_ARGS__)
template <class T>
__device__ __forceinline__ void mma16(float* d, uint32_t a0, uint32_t a1, uint32_t a2,
                                      uint32_t a3, uint32_t b0, uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    TESSERA_MMA("m16n8k16", "f16", "{%4,%5,%6,%7}, {%8,%9}", "r"(a0), "r"(a1), "r"(a2), "r"(a3),
                "r"(b0), "r"(b1));
  else
    TESSERA_MMA("m16n8k16", "bf16", "{%4,%5,%6,%7}, {%8,%9}", "r"(a0), "r"(a1), "r"(a2),
                "r"(a3), "r"(b0), "r"(b1));
#else
  if constexpr (!std::is_same_v<T, __half>) __trap();  // the launcher keeps BF16 off sm_75
  TESSERA_MMA("m16n8k8", "f16", "{%4,%5}, {%6}", "r"(a0), "r"(a1), "r"(b0));
  TESSERA_MMA("m16n8k8", "f16", "{%4,%5}, {%6}", "r"(a2), "r"(a3), "r"(b1));
#endif
}
#undef TESSERA_MMA
template <class T>  // a * b + c on pairs of T in registers (bf16 needs sm_80)
__device__ __forceinline__ uint32_t hfma2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r = 0;
#if __CUDA_ARCH__ >= 800
  if constexpr (!std::is_same_v<T, __half>)
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  else
#endif
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

// Word v's codes minus the zero as pairs of T (mma A operands, exact) and the matching x pairs
// from words xw; zb = zero + 128. int4 pair i = inputs i, i + 4: f16 masks nibble i of both
// halves under the magic 1024 (high nibbles read 1024 + 16 code: the HFMA2 scales by 1/16), bf16
// shifts it under 128. int8 pair i = inputs 2i, 2i + 1: f16 by a byte permute, bf16 via F32.
template <class T, bool kInt4>
__device__ __forceinline__ void mma_pairs(uint32_t v, uint32_t zb, const uint32_t* xw,
                                          uint32_t* a, uint32_t* b) {
  constexpr bool kF16 = std::is_same_v<T, __half>;
  if constexpr (kInt4 && kF16) {
    const uint32_t h = 0x64006400u | zb * 0x10001u;  // 1152 + zero in each half
    const uint32_t zt[2] = {hfma2<T>(h, 0xBC00BC00u, 0x58005800u),   // -(1024 + zero)
                            hfma2<T>(h, 0xBC00BC00u, 0x64406440u)};  // -(64 + zero)
    for (int i = 0; i < 4; ++i)
      a[i] = hfma2<T>(and_or(i < 2 ? v : v >> 8, i % 2 ? 0x00F000F0u : 0x000F000Fu, 0x64006400u),
                      i % 2 ? 0x2C002C00u : 0x3C003C00u, zt[i % 2]);
  } else if constexpr (kInt4) {
    const uint32_t zt = __float_as_uint(8388608.f - __uint_as_float(kMagic | zb));
    for (int i = 0; i < 4; ++i)  // zt: -(128 + zero), in both halves
      a[i] = hfma2<T>(and_or(v >> 4 * i, 0x000F000Fu, 0x43004300u), 0x3F803F80u,
                      __byte_perm(zt, 0, 0x3232));
  } else if constexpr (kF16) {  // 1024 + code + 128 - 1152
    a[0] = hfma2<T>(__byte_perm(v ^ 0x80808080u, 0x6464u, 0x4140), 0x3C003C00u, 0xE480E480u);
    a[1] = hfma2<T>(__byte_perm(v ^ 0x80808080u, 0x6464u, 0x4342), 0x3C003C00u, 0xE480E480u);
  } else {
    float f[4];
    word_codes<false>(v, nullptr, f);
    a[0] = __byte_perm(__float_as_uint(f[0]), __float_as_uint(f[1]), 0x7632);
    a[1] = __byte_perm(__float_as_uint(f[2]), __float_as_uint(f[3]), 0x7632);
  }
  if constexpr (kInt4) {  // x words {0 1} {2 3} {4 5} {6 7} -> pairs {0 4} {1 5} {2 6} {3 7}
    b[0] = __byte_perm(xw[0], xw[2], 0x5410), b[1] = __byte_perm(xw[0], xw[2], 0x7632);
    b[2] = __byte_perm(xw[1], xw[3], 0x5410), b[3] = __byte_perm(xw[1], xw[3], 0x7632);
  } else {
    b[0] = xw[0], b[1] = xw[1];
  }
}

// x: [M, K] F16/BF16; w.q int8 [N, K] / int4 [N, K / 2] (groups of 128k); y: [M, N]. Block b
// owns rows 16b .. 16b + 15, warp w k-steps w, w + 8, ... (64 bytes of each row). Lane 4g + c
// reads bytes 16c .. 16c + 15 of the step in rows 16b + g, 16b + g + 8 (N - 1 past the end) and
// x of token g (M - 1 past M). A and B share a permutation of k: the same dot products.
template <class T, class Y, bool kInt4>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, 2)  // <= 128 regs: 2 blocks per SM
    mma_gemv_kernel(const T* __restrict__ x, int M, QuantMatrix w,
                    const float* __restrict__ bias, Y* __restrict__ y) {
  constexpr int kCodes = kInt4 ? 32 : 16, kPairs = kCodes / 8;  // per lane, row, step, word
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
  const int64_t N = w.N, K = w.K, n0 = int64_t(blockIdx.x) * 16;
  const int64_t row_bytes = kInt4 ? K / 2 : K, steps = row_bytes / 64;
  const uint32_t gs = kInt4 ? uint32_t(w.group_size) : 1u, G = (uint32_t(K) + gs - 1) / gs;
  const int64_t r[2] = {min(n0 + g, N - 1), min(n0 + g + 8, N - 1)};  // the lane's A rows
  const uint4* xq = reinterpret_cast<const uint4*>(x + (g < M ? g : M - 1) * K + c * kCodes);
  auto wq = [&](int i, int p) {  // the lane's 16 bytes of its row i's k-step p
    return reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.q) + r[i] * row_bytes) +
           4 * p + c;
  };
  struct Stage { uint4 w[2], x[kCodes / 8]; float s[2]; uint32_t zb; };  // zb: zeros << 0, 16
  GroupWalk grp(warp * 4 * kCodes, kWarpsPerBlock * 4 * kCodes, gs);  // of the last load
  auto load = [&](int p) {
    Stage st{};
    for (int i = 0; i < 2; ++i) {  // weights: read once, streaming
      st.w[i] = __ldcs(wq(i, p));
      st.s[i] = kInt4 ? __ldg(w.scales + r[i] * G + grp.g) : 1.f;
      st.zb |= kInt4 ? uint32_t(uint8_t(__ldg(w.zeros + r[i] * G + grp.g))) << 16 * i : 0u;
    }
    for (int j = 0; j < kCodes / 8; ++j) st.x[j] = __ldg(xq + p * (kCodes / 2) + j);
    return st;
  };
  float acc[4] = {};  // rows g, g, g + 8, g + 8 x tokens 2c, 2c + 1, 2c, 2c + 1
  Stage cur = warp < steps ? load(warp) : Stage{};
#pragma unroll 2
  for (int p = warp; p < int(steps); p += kWarpsPerBlock) {
    const int pn = p + kWarpsPerBlock < steps ? p + kWarpsPerBlock : p;  // last: reload p
    if (pn != p) grp.next();
    const Stage nxt = load(pn);  // in flight during the math below
    if (pn + kWarpsPerBlock < steps)  // and the step after it, DRAM -> L2
      prefetch_l2(wq(0, pn + kWarpsPerBlock)), prefetch_l2(wq(1, pn + kWarpsPerBlock));
    float d[4] = {};
    for (int j = 0; j < 4; ++j) {  // word j of the lane's 16 bytes of each row
      const uint32_t* xw = reinterpret_cast<const uint32_t*>(cur.x) + j * kPairs;
      uint32_t a0[kPairs], a1[kPairs], b[kPairs];
      mma_pairs<T, kInt4>((&cur.w[0].x)[j], (cur.zb & 0xFFu) ^ 0x80u, xw, a0, b);
      mma_pairs<T, kInt4>((&cur.w[1].x)[j], (cur.zb >> 16) ^ 0x80u, xw, a1, b);
      for (int t = 0; t < kPairs; t += 2)
        mma16<T>(d, a0[t], a1[t], a0[t + 1], a1[t + 1], b[t], b[t + 1]);
    }
    acc[0] = fmaf(cur.s[0], d[0], acc[0]), acc[1] = fmaf(cur.s[0], d[1], acc[1]);  // int8:
    acc[2] = fmaf(cur.s[1], d[2], acc[2]), acc[3] = fmaf(cur.s[1], d[3], acc[3]);  // s at end
    cur = nxt;
  }
  __shared__ float part[kWarpsPerBlock][4][32];  // [warp][acc slot][lane]
  for (int i = 0; i < 4; ++i) part[warp][i][lane] = acc[i];
  __syncthreads();
  if (warp >= 4) return;
  float v = 0.0f;  // warp i < 4 sums slot i over the warps
  for (int u = 0; u < kWarpsPerBlock; ++u) v += part[u][warp][lane];
  const int64_t n = n0 + g + 8 * (warp >> 1), m = 2 * c + (warp & 1);
  if (n < N && m < M)
    y[m * N + n] = from_f32<Y>((kInt4 ? v : v * w.scales[n]) + (bias ? bias[n] : 0.0f));
}

template <class T>  // mma_gemv_kernel for T: F16, or BF16 on sm_80+ (asked once per process:
bool mma_allowed() {  // one GPU per rank); TESSERA_QUANT_GEMV=fma: never (to compare on a GPU)
  static const bool bf16 = [] {
    int dev = 0, major = 0;  // a failed query keeps the FMA path
    const auto cc = cudaDevAttrComputeCapabilityMajor;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cc, dev) == cudaSuccess && major >= 8;
  }();
  return !env_is("TESSERA_QUANT_GEMV", "fma") && (std::is_same_v<T, __half> || bf16);
}

template <class T, class Y>
void launch_gemv(const void* xv, int64_t M, const QuantMatrix& w, const float* bias, void* yv,
                 cudaStream_t stream) {
  const T* x = static_cast<const T*>(xv);  // [M, K]
  Y* y = static_cast<Y*>(yv);              // [M, N]
  // Wide loads need 16-byte aligned x and q (views may not be), and rows of whole loads.
  const bool al = reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                  reinterpret_cast<uintptr_t>(w.q) % 16 == 0;
  const int64_t bytes = w.int4 ? w.K / 2 : w.K, gs = w.int4 ? w.group_size : 128;
  const unsigned threads = kWarpsPerBlock * 32, blocks = unsigned((w.N + 7) / 8);  // 8 warps
  auto run = [&](auto int4) {
    constexpr bool kInt4 = decltype(int4)::value;
    if constexpr (!std::is_same_v<T, float>) {  // a k-step (64 bytes of a row) in one group
      if (al && bytes % 64 == 0 && gs % 128 == 0 && mma_allowed<T>())
        return mma_gemv_kernel<T, Y, kInt4><<<(blocks + 1) / 2, threads, 0, stream>>>(  // 16 rows
            x, int(M), w, bias, y);
    }
    if (al && bytes % 16 == 0 && gs % 32 == 0)  // 16-byte units
      fma_gemv_kernel<T, Y, kInt4, 4><<<blocks, threads, 0, stream>>>(x, int(M), w, true,
                                                                      bias, y);
    else  // 4-byte words (8 int4 inputs: one group), or bytes
      fma_gemv_kernel<T, Y, kInt4, 1><<<blocks, threads, 0, stream>>>(
          x, int(M), w, al && bytes % 4 == 0 && gs % 8 == 0, bias, y);
  };
  w.int4 ? run(std::true_type{}) : run(std::false_type{});
  check_launch("quantized GEMV");
}

}  // namespace

void quant_gemv_cuda(const void* x, DType x_dtype, int64_t M, const QuantMatrix& w,
                     const float* bias, void* y, DType y_dtype, cudaStream_t stream) {
  if (M < 1 || M > kQuantGemvMaxTokens)
    throw std::invalid_argument("quant GEMV: " + std::to_string(M) + " tokens");
  dispatch_float(x_dtype, "quant linear", [&](auto tag) {
    using T = decltype(tag);
    if (y_dtype == DType::F32) launch_gemv<T, float>(x, M, w, bias, y, stream);
    else launch_gemv<T, T>(x, M, w, bias, y, stream);
  });
}

}  // namespace tessera
