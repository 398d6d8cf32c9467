// CUDA graphs of decode steps for CudaBackend::run_captured: one executable graph per
// StepKey, the least recently used dropped beyond a capacity. Included by .cu files only.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "runtime/backend.h"

namespace tessera {

struct StepKeyHash {
  size_t operator()(const StepKey& k) const;
};

class CudaStepGraphs {
 public:
  explicit CudaStepGraphs(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  ~CudaStepGraphs() { clear(); }
  CudaStepGraphs(const CudaStepGraphs&) = delete;
  CudaStepGraphs& operator=(const CudaStepGraphs&) = delete;

  // First sighting of `key`: runs ops eagerly (a warm-up: lazy kernel loading, cuBLAS
  // heuristics, and proof that the step works). Second: captures ops on `stream` into a graph
  // and launches it. Afterwards: relaunches that graph without calling ops. A capture that
  // fails is reported once on stderr; that key's steps then run eagerly.
  void run(cudaStream_t stream, const StepKey& key, const std::function<void()>& ops);
  // Runs ops eagerly and counts it (capture turned off).
  void run_eager(const std::function<void()>& ops);
  // Drops every graph (a buffer they use was reallocated). In-flight launches finish first.
  void clear();
  StepCaptureStats stats() const;

 private:
  struct Entry {
    cudaGraphExec_t exec = nullptr;  // null: seen once (warm-up) or uncapturable
    bool uncapturable = false;
    uint64_t last_use = 0;
  };
  // Captures ops into *exec; returns why not ("" on success). The stream is out of capture
  // mode afterwards whatever happened.
  static std::string capture(cudaStream_t stream, const std::function<void()>& ops,
                             cudaGraphExec_t* exec);
  void make_room();  // evicts least recently used entries until one more fits

  size_t capacity_;
  uint64_t tick_ = 0;
  bool warned_ = false;
  std::unordered_map<StepKey, Entry, StepKeyHash> entries_;
  StepCaptureStats stats_;
};

}  // namespace tessera
