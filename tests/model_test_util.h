// Loading the test-data models on the CPU backend, and running them step by step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "runtime/backend.h"
#include "runtime/model.h"

namespace tessera::test {

struct CpuModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Comm> comm;
  std::unique_ptr<Model> model;
};

// Loads DIR (a Hugging Face checkpoint) on the CPU backend, tp 1.
CpuModel load_cpu_model(const std::string& dir, CpuPrecision precision = CpuPrecision::Exact);

// Prefills `prompt` in one batch with logits at every position: [prompt.size(), vocab].
std::vector<std::vector<float>> prefill_all_logits(Model& m, const std::vector<int32_t>& prompt);

// Prefill, then `steps` greedy decode steps through the KV cache. Returns the logits that
// chose each generated token ([steps][vocab]) and fills `ids` with the tokens.
std::vector<std::vector<float>> greedy_decode(Model& m, const std::vector<int32_t>& prompt,
                                              int steps, std::vector<int32_t>* ids);

float max_abs(const std::vector<float>& v);

}  // namespace tessera::test
