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
CpuModel load_cpu_model(const std::string& dir, CpuPrecision precision = CpuPrecision::Exact,
                        WeightFormat proj_format = WeightFormat::Dense);

// A model on a backend the caller owns (e.g. a shared GPU one), tp 1.
struct ModelOn {
  std::unique_ptr<Comm> comm;
  std::unique_ptr<Model> model;
};
ModelOn load_model_on(Backend& backend, const std::string& dir,
                      WeightFormat proj_format = WeightFormat::Dense);

// Prefills `prompt` in one batch with logits at every position: [prompt.size(), vocab].
std::vector<std::vector<float>> prefill_all_logits(Model& m, const std::vector<int32_t>& prompt);

// Prefill, then `steps` greedy decode steps through the KV cache. Returns the logits that
// chose each generated token ([steps][vocab]) and fills `ids` with the tokens.
std::vector<std::vector<float>> greedy_decode(Model& m, const std::vector<int32_t>& prompt,
                                              int steps, std::vector<int32_t>* ids);

// Teacher forcing: logits [forced.size()][vocab], step 0 after the prompt, step s after also
// feeding forced[0, s) (whatever the model would pick), through the KV cache.
std::vector<std::vector<float>> teacher_forced(Model& m, const std::vector<int32_t>& prompt,
                                               const std::vector<int32_t>& forced);

float max_abs(const std::vector<float>& v);

}  // namespace tessera::test
