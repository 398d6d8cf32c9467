// Batch index arrays staged through pinned memory in one copy (see cuda_batch_upload.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <vector>

#include "kernels/cuda_util.cuh"
#include "runtime/backend_cuda.h"
#include "runtime/cuda_batch_upload.h"

namespace tessera {
namespace {

using cuda::check;

// Block-table row stride on the device: the batch's width rounded up to a power of two, at
// least 8, so one decode graph serves contexts growing up to stride * block_size tokens.
int64_t padded_stride(int64_t width) {
  if (width <= 0) return 0;
  int64_t s = 8;
  while (s < width) s *= 2;
  return s;
}

}  // namespace

CudaBatchUpload::~CudaBatchUpload() {
  if (staged_ != nullptr) cudaEventDestroy(staged_);
}

BatchTensors CudaBatchUpload::upload(const Batch& b, cudaStream_t stream,
                                     const std::function<void()>& before_realloc) {
  const int64_t seqs = b.num_seqs(), width = b.max_blocks_per_seq;
  const int64_t stride = padded_stride(width);
  if (int64_t(b.block_tables.size()) != seqs * width)
    throw std::invalid_argument("cuda backend upload_batch: block table size");
  const std::vector<int32_t>* parts[] = {&b.token_ids, &b.positions,    &b.slot_mapping,
                                         &b.seq_begin, &b.context_lens, &b.logit_indices};
  size_t total = size_t(seqs * stride);
  for (const auto* v : parts) total += v->size();
  const size_t bytes = total * sizeof(int32_t);
  if (staged_ == nullptr)
    check(cudaEventCreateWithFlags(&staged_, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventSynchronize(staged_), "batch staging");
  if (bytes > capacity_) {
    const size_t capacity = std::max(bytes * 2, size_t(4096));
    check(cudaStreamSynchronize(stream), "batch realloc");
    before_realloc();
    // Both buffers first, then the capacity: when an allocation throws (the engine reports
    // the step's error and serves on), the old buffers and their capacity stay consistent.
    std::shared_ptr<void> staging = cuda_pinned_alloc(capacity);
    std::shared_ptr<void> device = cuda_device_alloc(capacity, "the batch index arrays");
    staging_ = std::move(staging);
    device_ = std::move(device);
    capacity_ = capacity;
  }
  int32_t* host = static_cast<int32_t*>(staging_.get());
  int32_t* dev = static_cast<int32_t*>(device_.get());
  BatchTensors t;
  t.host = &b;
  Tensor* outs[] = {&t.token_ids,    &t.positions,    &t.slot_mapping,
                    &t.seq_begin,    &t.context_lens, &t.logit_indices};
  size_t at = 0;
  for (int i = 0; i < 6; ++i) {
    const auto& v = *parts[i];
    if (!v.empty()) std::memcpy(host + at, v.data(), v.size() * sizeof(int32_t));
    *outs[i] = make_tensor_view(dev + at, DType::I32, {int64_t(v.size())}, device_,
                                Device::CUDA);
    at += v.size();
  }
  std::fill_n(host + at, size_t(seqs * stride), int32_t(-1));
  for (int64_t s = 0; s < seqs; ++s)
    std::copy_n(b.block_tables.data() + s * width, width, host + at + s * stride);
  t.block_tables = make_tensor_view(dev + at, DType::I32, {seqs, stride}, device_,
                                    Device::CUDA);
  if (bytes > 0)
    check(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream), "batch upload");
  check(cudaEventRecord(staged_, stream), "batch staging event");
  const int64_t layout[kLayoutWords] = {b.num_tokens(), seqs, stride, b.num_logits(),
                                        int64_t(reinterpret_cast<uintptr_t>(dev)),
                                        int64_t(capacity_)};
  std::copy(std::begin(layout), std::end(layout), std::begin(layout_));
  return t;
}

}  // namespace tessera
