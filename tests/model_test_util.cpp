#include "tests/model_test_util.h"

#include <algorithm>
#include <cmath>

#include "kernels/sampling.h"
#include "runtime/sequence.h"
#include "runtime/weights.h"

namespace tessera::test {

CpuModel load_cpu_model(const std::string& dir, CpuPrecision precision) {
  CpuModel m;
  m.backend = make_cpu_backend(0, precision);
  m.comm = make_single_comm();
  ModelConfig cfg = load_model_config(dir);
  auto src = open_checkpoint_source(dir);
  ModelWeights w = load_model_weights(*src, cfg, *m.backend, m.comm->world());
  m.model = std::make_unique<Model>(cfg, std::move(w), *m.backend, *m.comm);
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

std::vector<std::vector<float>> greedy_decode(Model& m, const std::vector<int32_t>& prompt,
                                              int steps, std::vector<int32_t>* ids) {
  const int64_t bs = 16, V = m.config().vocab_size;
  const int64_t total = int64_t(prompt.size()) + steps;
  KvCache kv(m.backend(), m.kv_shape(total / bs + 1, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  Sequence s;
  s.tokens = prompt;
  s.reserve(alloc, total, bs);
  std::vector<std::vector<float>> out;
  int64_t count = int64_t(prompt.size());
  for (int i = 0; i < steps; ++i) {
    BatchBuilder bb(bs);
    bb.add(s, count, false);
    std::vector<float> logits = m.forward(bb.build(), kv);
    s.num_cached += count;
    count = 1;
    const int32_t next = argmax_cpu(logits.data(), V);
    ids->push_back(next);
    s.tokens.push_back(next);
    out.push_back(std::move(logits));
  }
  return out;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace tessera::test
