// Captured decode steps: stream capture into a CUDA graph on a key's second sighting,
// relaunch afterwards, LRU eviction (see cuda_step_graphs.h).
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>
#include <string>

#include "kernels/cuda_util.cuh"
#include "runtime/cuda_step_graphs.h"

namespace tessera {

size_t StepKeyHash::operator()(const StepKey& k) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the words
  for (int64_t w : k.words) {
    h ^= uint64_t(w);
    h *= 1099511628211ull;
  }
  return size_t(h ^ (h >> 29));
}

void CudaStepGraphs::run(cudaStream_t stream, const StepKey& key,
                         const std::function<void()>& ops) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ops();  // the warm-up; recorded only when it worked
    make_room();
    entries_.emplace(key, Entry{nullptr, false, ++tick_});
    ++stats_.eager;
    return;
  }
  Entry& e = it->second;
  e.last_use = ++tick_;
  if (e.uncapturable) {
    ++stats_.eager;
    ops();
    return;
  }
  if (e.exec == nullptr) {
    const std::string why = capture(stream, ops, &e.exec);
    if (!why.empty()) {
      e.exec = nullptr;
      e.uncapturable = true;
      ++stats_.failures;
      if (!warned_) {
        std::fprintf(stderr, "notice: CUDA graph capture failed (%s); such steps run without "
                             "graphs\n", why.c_str());
        warned_ = true;
      }
      ++stats_.eager;
      ops();  // nothing ran during the capture; a genuine error throws again here
      return;
    }
    ++stats_.captures;
  } else {
    ++stats_.replays;
  }
  cuda::check(cudaGraphLaunch(e.exec, stream), "cudaGraphLaunch");
}

void CudaStepGraphs::run_eager(const std::function<void()>& ops) {
  ++stats_.eager;
  ops();
}

std::string CudaStepGraphs::capture(cudaStream_t stream, const std::function<void()>& ops,
                                    cudaGraphExec_t* exec) {
  *exec = nullptr;
  // Thread-local mode: this thread may not call unsafe APIs (cudaMalloc, synchronisation)
  // while capturing, which is exactly what ops must not do; other threads are unaffected.
  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(e);
  }
  std::string why;
  try {
    ops();
  } catch (const std::exception& ex) {
    why = ex.what();
  } catch (...) {
    why = "unknown exception";
  }
  cudaGraph_t graph = nullptr;
  e = cudaStreamEndCapture(stream, &graph);  // always: leaves capture mode
  if (why.empty() && e != cudaSuccess)
    why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e);
  if (why.empty() && graph == nullptr) why = "nothing was captured";
  if (why.empty()) {
    e = cudaGraphInstantiate(exec, graph, 0);
    if (e != cudaSuccess) {
      why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
      *exec = nullptr;
    }
  }
  if (graph != nullptr) cudaGraphDestroy(graph);
  if (!why.empty()) cudaGetLastError();  // capture errors are not sticky: clear them
  return why;
}

void CudaStepGraphs::make_room() {
  while (!entries_.empty() && entries_.size() >= capacity_) {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.last_use < oldest->second.last_use) oldest = it;
    if (oldest->second.exec != nullptr) {
      cudaGraphExecDestroy(oldest->second.exec);  // freed when an in-flight launch ends
      ++stats_.evictions;
    }
    entries_.erase(oldest);
  }
}

void CudaStepGraphs::clear() {
  for (auto& [key, e] : entries_)
    if (e.exec != nullptr) cudaGraphExecDestroy(e.exec);
  entries_.clear();
}

StepCaptureStats CudaStepGraphs::stats() const {
  StepCaptureStats s = stats_;
  s.cached = 0;
  for (const auto& [key, e] : entries_) s.cached += e.exec != nullptr ? 1 : 0;
  return s;
}

}  // namespace tessera
