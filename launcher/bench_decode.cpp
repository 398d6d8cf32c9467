#include "launcher/bench_decode.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/sequence.h"

namespace tessera {
namespace {

using clock_type = std::chrono::steady_clock;
constexpr int64_t kBlock = kBenchBlockSize;
constexpr int64_t kPrefillChunk = 512;  // the context prefill's tokens per step

int64_t blocks_for(int64_t tokens) { return (tokens + kBlock - 1) / kBlock; }

// `batch` sequences of depth + 1 random tokens with the first `depth` in the cache (prefilled
// in chunks, untimed), blocks reserved for the timed steps too.
std::vector<Sequence> contexts(Model& m, KvCache& kv, BlockAllocator& alloc,
                               const DecodeSpec& spec, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> tok(0, int32_t(m.config().vocab_size - 1));
  std::vector<Sequence> seqs(size_t(spec.batch));
  for (Sequence& s : seqs) {
    for (int64_t i = 0; i <= spec.depth; ++i) s.tokens.push_back(tok(rng));
    s.reserve(alloc, spec.depth + spec.steps + 1, kBlock);
    while (s.num_cached < spec.depth) {
      const int64_t n = std::min(kPrefillChunk, spec.depth - s.num_cached);
      BatchBuilder bb(kBlock);
      bb.add(s, n, LogitsFor::None);
      m.forward(bb.build(), kv);
      s.num_cached += n;
    }
  }
  return seqs;
}

// Tokens/s of `steps` decode steps from copies of the contexts (their cached K/V are kept;
// the steps overwrite only positions past depth), adding one random token per step
// (sampling is not part of the step).
double decode_once(Model& m, KvCache& kv, std::vector<Sequence> seqs, int64_t steps,
                   std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> tok(0, int32_t(m.config().vocab_size - 1));
  const auto t0 = clock_type::now();
  for (int64_t i = 0; i < steps; ++i) {
    BatchBuilder bb(kBlock);
    for (const Sequence& s : seqs) bb.add(s, 1, false);
    m.forward(bb.build(), kv);  // returns the logits on the host: the step has finished
    for (Sequence& s : seqs) {
      s.num_cached += 1;
      s.tokens.push_back(tok(rng));
    }
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  return double(int64_t(seqs.size()) * steps) / seconds;
}

// Median tokens/s over the repeats, after an untimed warm-up pass (with graphs: a full pass,
// so the timed passes replay graphs captured in it).
double decode_median(Model& m, KvCache& kv, const std::vector<Sequence>& seqs,
                     const DecodeSpec& spec, std::mt19937& rng) {
  const bool graphs = m.backend().step_capture();
  decode_once(m, kv, seqs, graphs ? spec.steps : std::min<int64_t>(spec.steps, 2), rng);
  std::vector<double> tps;
  for (int64_t r = 0; r < spec.repeats; ++r)
    tps.push_back(decode_once(m, kv, seqs, spec.steps, rng));
  std::sort(tps.begin(), tps.end());
  return tps[tps.size() / 2];
}

}  // namespace

nlohmann::json measure_decode(Model& m, const DecodeSpec& spec, std::mt19937& rng) {
  const int64_t blocks = spec.batch * blocks_for(spec.depth + spec.steps + 1);
  KvCache kv(m.backend(), m.kv_shape(blocks, kBlock));
  BlockAllocator alloc(blocks);
  const std::vector<Sequence> seqs = contexts(m, kv, alloc, spec, rng);
  Backend& be = m.backend();
  const bool graphs = be.step_capture();
  nlohmann::json row = {{"kv_blocks", blocks}, {"cuda_graphs", graphs}};
  row["tokens_per_s"] = decode_median(m, kv, seqs, spec, rng);
  if (!graphs) return row;
  be.set_step_capture(false);
  try {
    row["tokens_per_s_no_graphs"] = decode_median(m, kv, seqs, spec, rng);
  } catch (...) {
    be.set_step_capture(true);
    throw;
  }
  be.set_step_capture(true);
  row["graph_speedup"] =
      row["tokens_per_s"].get<double>() / row["tokens_per_s_no_graphs"].get<double>();
  return row;
}

uint64_t kv_bytes_per_token(const Model& m) {
  return uint64_t(m.kv_shape(1, kBlock).bytes_per_block() / kBlock);
}

}  // namespace tessera
