#include "runtime/perplexity.h"

#include <algorithm>
#include <string>

#include "runtime/error.h"
#include "runtime/sequence.h"

namespace tessera {
namespace {

constexpr int64_t kBlock = 16;
// Logits of at most this many bytes per forward step: long windows of large vocabularies run
// as several prefill chunks (the same attention, through the KV cache).
constexpr int64_t kMaxLogitBytes = int64_t(256) << 20;

// -log softmax(row)[target], in double.
double token_nll(const float* row, int64_t vocab, int32_t target) {
  float mx = row[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, row[i]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - double(mx));
  return std::log(sum) + double(mx) - double(row[target]);
}

}  // namespace

PerplexityResult evaluate_perplexity(Model& m, const std::vector<int32_t>& ids, int64_t window) {
  const int64_t n = int64_t(ids.size()), vocab = m.config().vocab_size;
  require(n >= 2, "perplexity needs at least 2 tokens, got " + std::to_string(n));
  require(window >= 2, "--window must be at least 2, got " + std::to_string(window));
  require(window <= m.config().max_position_embeddings,
          "--window " + std::to_string(window) + " is beyond the model's " +
              "max_position_embeddings (" + std::to_string(m.config().max_position_embeddings) +
              ")");
  const int64_t chunk = std::clamp<int64_t>(kMaxLogitBytes / (vocab * 4), 1, window);
  KvCache kv(m.backend(), m.kv_shape((window + kBlock - 1) / kBlock, kBlock));
  PerplexityResult r;
  for (int64_t begin = 0; begin < n; begin += window) {
    const int64_t len = std::min(window, n - begin);
    // A fresh sequence in fresh blocks: attention sees only this window's tokens.
    BlockAllocator alloc(kv.shape().num_blocks);
    Sequence s;
    s.tokens.assign(ids.begin() + begin, ids.begin() + begin + len);
    s.reserve(alloc, len, kBlock);
    while (s.num_cached < len) {
      const int64_t count = std::min(chunk, len - s.num_cached);
      BatchBuilder bb(kBlock);
      bb.add(s, count, LogitsFor::All);
      const std::vector<float> logits = m.forward(bb.build(), kv);
      // Logit row i predicts window token num_cached + i + 1.
      for (int64_t i = 0; i < count; ++i) {
        const int64_t next = s.num_cached + i + 1;
        if (next >= len) break;
        r.total_nll += token_nll(logits.data() + i * vocab, vocab, s.tokens[size_t(next)]);
        ++r.scored;
      }
      s.num_cached += count;
    }
    ++r.windows;
  }
  require(r.scored > 0, "no token was scored");
  return r;
}

}  // namespace tessera
