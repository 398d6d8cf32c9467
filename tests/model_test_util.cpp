#include "tests/model_test_util.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "kernels/sampling.h"
#include "runtime/sequence.h"
#include "runtime/weights.h"

namespace tessera::test {

ModelOn load_model_on(Backend& backend, const std::string& dir, WeightFormat proj_format) {
  ModelOn m;
  m.comm = make_single_comm();
  const ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  ModelWeights w = load_model_weights(*src, cfg, backend, m.comm->world(), proj_format);
  m.model = std::make_unique<Model>(cfg, std::move(w), backend, *m.comm);
  return m;
}

CpuModel load_cpu_model(const std::string& dir, CpuPrecision precision,
                        WeightFormat proj_format) {
  CpuModel m;
  m.backend = make_cpu_backend(0, precision);
  ModelOn on = load_model_on(*m.backend, dir, proj_format);
  m.comm = std::move(on.comm);
  m.model = std::move(on.model);
  return m;
}

std::vector<std::vector<float>> prefill_all_logits(Model& m, const std::vector<int32_t>& prompt) {
  const int64_t bs = 16, V = m.config().vocab_size;
  KvCache kv(m.backend(), m.kv_shape(int64_t(prompt.size()) / bs + 1, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  Sequence s;
  s.tokens = prompt;
  s.reserve(alloc, int64_t(prompt.size()), bs);
  BatchBuilder bb(bs);
  bb.add(s, int64_t(prompt.size()), true);
  std::vector<float> flat = m.forward(bb.build(), kv);
  std::vector<std::vector<float>> rows;
  for (size_t i = 0; i < prompt.size(); ++i)
    rows.emplace_back(flat.begin() + long(i * size_t(V)), flat.begin() + long((i + 1) * size_t(V)));
  return rows;
}

namespace {

// Prefill, then steps - 1 single-token steps through the KV cache; the token fed after step i
// is next(i, its logits). Returns each step's logits [steps][vocab].
std::vector<std::vector<float>> run_steps(
    Model& m, const std::vector<int32_t>& prompt, int64_t steps,
    const std::function<int32_t(int64_t, const std::vector<float>&)>& next) {
  const int64_t bs = 16, total = int64_t(prompt.size()) + steps;
  KvCache kv(m.backend(), m.kv_shape(total / bs + 1, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  Sequence s;
  s.tokens = prompt;
  s.reserve(alloc, total, bs);
  std::vector<std::vector<float>> out;
  int64_t count = int64_t(prompt.size());
  for (int64_t i = 0; i < steps; ++i) {
    BatchBuilder bb(bs);
    bb.add(s, count, false);
    out.push_back(m.forward(bb.build(), kv));
    s.num_cached += count;
    count = 1;
    s.tokens.push_back(next(i, out.back()));
  }
  return out;
}

}  // namespace

std::vector<std::vector<float>> greedy_decode(Model& m, const std::vector<int32_t>& prompt,
                                              int steps, std::vector<int32_t>* ids) {
  const int64_t V = m.config().vocab_size;
  return run_steps(m, prompt, steps, [&](int64_t, const std::vector<float>& logits) {
    ids->push_back(argmax_cpu(logits.data(), V));
    return ids->back();
  });
}

std::vector<std::vector<float>> teacher_forced(Model& m, const std::vector<int32_t>& prompt,
                                               const std::vector<int32_t>& forced) {
  return run_steps(m, prompt, int64_t(forced.size()),
                   [&](int64_t i, const std::vector<float>&) { return forced[size_t(i)]; });
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace tessera::test
