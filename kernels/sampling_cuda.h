// CUDA token sampling from F32 logits on the device (twins of sampling_cpu.cpp): greedy, and
// temperature + top-k + top-p with a caller-supplied uniform u, same order and tie rules.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/sampling.h"

namespace tessera {

// out[r] = argmax of logits row r ([rows, vocab]), the first index on ties.
void argmax_cuda(const float* logits, int64_t rows, int64_t vocab, int32_t* out,
                 cudaStream_t stream);

// One row of device logits [vocab]; returns the sampled id (waits for the stream).
int32_t sample_cuda(const float* logits, int64_t vocab, const SamplingParams& p, double u,
                    cudaStream_t stream);

}  // namespace tessera
