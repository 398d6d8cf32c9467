#include "runtime/generator.h"

#include <chrono>
#include <random>
#include <string>

#include "runtime/error.h"
#include "runtime/sequence.h"

namespace tessera {

GenerateResult generate(Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt,
                        const std::function<void(int32_t)>& on_token) {
  const ModelConfig& cfg = model.config();
  require(!prompt.empty(), "the prompt is empty");
  for (int32_t id : prompt)
    require(id >= 0 && id < cfg.vocab_size, "prompt id " + std::to_string(id) +
                                                " is outside the vocabulary [0, " +
                                                std::to_string(cfg.vocab_size) + ")");
  require(int64_t(prompt.size()) <= cfg.max_position_embeddings,
          "the prompt has " + std::to_string(prompt.size()) +
              " tokens, more than max_position_embeddings (" +
              std::to_string(cfg.max_position_embeddings) + ")");
  require(opt.max_tokens >= 0, "max tokens must be non-negative");

  const int64_t total =
      std::min<int64_t>(int64_t(prompt.size()) + opt.max_tokens, cfg.max_position_embeddings);
  const int64_t bs = opt.block_size;
  KvCache kv(model.backend(), model.kv_shape((total + bs - 1) / bs, bs));
  BlockAllocator alloc(kv.shape().num_blocks);
  Sequence seq;
  seq.tokens = prompt;
  if (!seq.reserve(alloc, total, bs)) throw std::logic_error("generate: KV cache too small");

  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  GenerateResult res;
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  std::vector<float> logits;
  // Prefill in chunks; the last chunk's final position gives the first token.
  while (seq.num_cached < int64_t(seq.tokens.size())) {
    const int64_t count =
        std::min<int64_t>(opt.prefill_chunk, int64_t(seq.tokens.size()) - seq.num_cached);
    BatchBuilder bb(bs);
    bb.add(seq, count, false);
    logits = model.forward(bb.build(), kv);
    seq.num_cached += count;
  }
  auto t1 = clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int64_t step = 0; step < opt.max_tokens; ++step) {
    const int32_t next = sample_cpu(logits.data(), cfg.vocab_size, opt.sampling, uniform(rng));
    res.ids.push_back(next);
    if (on_token) on_token(next);
    if (!opt.ignore_eos && cfg.is_eos(next)) { res.stopped_at_eos = true; break; }
    if (step + 1 == opt.max_tokens) break;
    if (int64_t(seq.tokens.size()) >= total) { res.stopped_at_context = true; break; }
    seq.tokens.push_back(next);
    BatchBuilder bb(bs);
    bb.add(seq, 1, false);
    logits = model.forward(bb.build(), kv);
    seq.num_cached += 1;
  }
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  seq.release(alloc);
  return res;
}

}  // namespace tessera
