// The batch's index arrays on the GPU, for CudaBackend::upload_batch: every array through one
// pinned staging buffer and one copy, block tables padded to a power-of-two stride so that
// one decode graph serves a growing context. Included by .cu files only.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "runtime/backend.h"

namespace tessera {

class CudaBatchUpload {
 public:
  static constexpr int kLayoutWords = 6;

  CudaBatchUpload() = default;
  ~CudaBatchUpload();
  CudaBatchUpload(const CudaBatchUpload&) = delete;
  CudaBatchUpload& operator=(const CudaBatchUpload&) = delete;

  // Copies b's index arrays to the device on `stream` and returns views of them there (valid
  // until the next call; block_tables [num_seqs, padded stride], -1 past each row's end).
  // Waits until the previous call's copy has left the staging buffer. When the buffers must
  // grow, waits for `stream` and calls before_realloc() (CudaBackend drops its step graphs:
  // they read the old buffer). Call on a thread bound to the stream's device.
  BatchTensors upload(const Batch& b, cudaStream_t stream,
                      const std::function<void()>& before_realloc);

  // The last upload's layout (tokens, seqs, stride, logits, device buffer address, capacity):
  // it fixes every index array's address, so it belongs in every step key.
  const int64_t* layout() const { return layout_; }

 private:
  cudaEvent_t staged_ = nullptr;  // the last copy has left staging_ (created at first use)
  std::shared_ptr<void> staging_, device_;  // pinned host / device copies of the arrays
  size_t capacity_ = 0;
  int64_t layout_[kLayoutWords] = {};
};

}  // namespace tessera
