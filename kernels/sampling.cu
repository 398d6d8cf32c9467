// Sampling on the GPU. Greedy: a block-wide argmax per row. Otherwise: a stable descending
// radix sort of (logit, id) pairs (CUB; ties keep the lower id first, like the CPU), then one
// 1024-thread block does the softmax, the nucleus cut and the draw with block scans in double.
#include <cub/cub.cuh>

#include "kernels/cuda_util.cuh"
#include "kernels/sampling_cuda.h"

namespace tessera {
namespace {

using namespace tessera::cuda;

constexpr int kThreads = 1024;

// ---- kernels ----

__global__ void argmax_kernel(const float* __restrict__ logits, int64_t vocab,
                              int32_t* __restrict__ out) {
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  const float* row = logits + blockIdx.x * vocab;
  float bv = -INFINITY;
  int64_t bi = vocab;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x)
    if (row[i] > bv || bi == vocab) { bv = row[i]; bi = i; }  // strided: first max per thread
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) { best_v[warp] = bv; best_i[warp] = bi; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x >> 5); ++w)
      if (best_v[w] > bv || (best_v[w] == bv && best_i[w] < bi)) { bv = best_v[w]; bi = best_i[w]; }
    out[blockIdx.x] = int32_t(bi < vocab ? bi : 0);
  }
}

__global__ void iota_kernel(int32_t* ids, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    ids[i] = int32_t(i);
}

// sorted: logits descending, ids alongside; k candidates. Writes the chosen id to *out.
__global__ void __launch_bounds__(kThreads)
    draw_kernel(const float* __restrict__ sorted, const int32_t* __restrict__ ids, int64_t k,
                float temperature, float top_p, double u, int32_t* __restrict__ out) {
  using Scan = cub::BlockScan<double, kThreads>;
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ union { typename Scan::TempStorage scan; typename Reduce::TempStorage reduce; } tmp;
  __shared__ long long found;
  __shared__ double found_cum, total;
  const double mx = sorted[0];
  auto prob = [&](int64_t i) {
    return i < k ? exp((double(sorted[i]) - mx) / double(temperature)) : 0.0;
  };
  // Total probability mass of the candidates.
  double part = 0.0;
  for (int64_t i = threadIdx.x; i < k; i += kThreads) part += prob(i);
  const double sum = Reduce(tmp.reduce).Sum(part);
  if (threadIdx.x == 0) total = sum;
  __syncthreads();
  // First index i < limit where cum(i) >= threshold (strictly > when strict); cum inclusive.
  auto first_reaching = [&](int64_t limit, double threshold, bool strict, double* cum_at) {
    __syncthreads();  // every thread has read the previous call's result
    if (threadIdx.x == 0) found = -1;
    double running = 0.0;
    for (int64_t base = 0; base < limit; base += kThreads) {
      const int64_t i = base + threadIdx.x;
      double incl, chunk;
      __syncthreads();
      Scan(tmp.scan).InclusiveSum(i < limit ? prob(i) : 0.0, incl, chunk);
      const double cum = running + incl;
      const bool hit = i < limit && (strict ? threshold < cum : cum >= threshold);
      __syncthreads();
      if (hit) atomicMin(reinterpret_cast<unsigned long long*>(&found), (unsigned long long)i);
      __syncthreads();
      if (found >= 0 && found == i) found_cum = cum;
      running += chunk;
      __syncthreads();
      if (found >= 0) break;
    }
    __syncthreads();
    const long long result = found;
    if (cum_at != nullptr) *cum_at = result >= 0 ? found_cum : running;
    return result;
  };
  int64_t keep = k;
  double kept = total;
  if (top_p < 1.0f) {
    double c = 0.0;
    const int64_t f = first_reaching(k, double(top_p) * total, false, &c);
    if (f >= 0) { keep = f + 1; kept = c; }
  }
  const int64_t pick = first_reaching(keep, u * kept, true, nullptr);
  if (threadIdx.x == 0) *out = ids[pick >= 0 ? pick : keep - 1];
}

}  // namespace

// ---- launchers ----

void argmax_cuda(const float* logits, int64_t rows, int64_t vocab, int32_t* out,
                 cudaStream_t stream) {
  if (rows == 0) return;
  argmax_kernel<<<unsigned(rows), 1024, 0, stream>>>(logits, vocab, out);
  check_launch("argmax_kernel");
}

int32_t sample_cuda(const float* logits, int64_t vocab, const SamplingParams& p, double u,
                    cudaStream_t stream) {
  // Scratch: sorted keys, ids in and out, the result, and CUB's temporary storage.
  size_t cub_bytes = 0;
  check(cub::DeviceRadixSort::SortPairsDescending(nullptr, cub_bytes, (const float*)nullptr,
                                                  (float*)nullptr, (const int32_t*)nullptr,
                                                  (int32_t*)nullptr, vocab, 0, 32, stream),
        "cub sort size");
  const size_t n = size_t(vocab);
  const size_t bytes = n * 4 * 3 + 16 + cub_bytes;
  char* scratch = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&scratch), bytes, stream), "sample scratch");
  float* keys = reinterpret_cast<float*>(scratch);
  int32_t* ids_in = reinterpret_cast<int32_t*>(keys + n);
  int32_t* ids = ids_in + n;
  int32_t* result = ids + n;
  void* cub_tmp = scratch + n * 12 + 16;
  int32_t host = 0;
  try {
    if (p.temperature <= 0.0f || p.top_k == 1) {
      argmax_cuda(logits, 1, vocab, result, stream);
    } else {
      iota_kernel<<<grid_for(vocab, 256), 256, 0, stream>>>(ids_in, vocab);
      check_launch("iota_kernel");
      check(cub::DeviceRadixSort::SortPairsDescending(cub_tmp, cub_bytes, logits, keys, ids_in,
                                                      ids, vocab, 0, 32, stream),
            "cub sort");
      const int64_t k = p.top_k > 0 ? std::min<int64_t>(p.top_k, vocab) : vocab;
      draw_kernel<<<1, kThreads, 0, stream>>>(keys, ids, k, p.temperature, p.top_p, u, result);
      check_launch("draw_kernel");
    }
    check(cudaMemcpyAsync(&host, result, 4, cudaMemcpyDeviceToHost, stream), "sample result");
    check(cudaStreamSynchronize(stream), "sample sync");
  } catch (...) {
    cudaFreeAsync(scratch, stream);
    throw;
  }
  check(cudaFreeAsync(scratch, stream), "sample scratch free");
  return host;
}

}  // namespace tessera
