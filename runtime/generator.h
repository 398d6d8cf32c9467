// Offline generation of one sequence: prefill the prompt, then decode token by token with
// the paged KV cache. (The serving engine schedules many sequences; this is the CLI path.)
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/sampling.h"
#include "runtime/model.h"

namespace tessera {

struct GenerateOptions {
  int64_t max_tokens = 64;
  SamplingParams sampling;
  uint64_t seed = 0;
  bool ignore_eos = false;
  int64_t block_size = 16;
  int64_t prefill_chunk = 512;  // prompt tokens per forward step
};

struct GenerateResult {
  std::vector<int32_t> ids;       // generated ids only
  double prefill_seconds = 0;     // prompt forward passes (incl. the first token's logits)
  double decode_seconds = 0;      // the remaining steps
  bool stopped_at_eos = false;
  bool stopped_at_context = false;  // reached max_position_embeddings
};

// Throws UserError for an empty prompt, ids outside the vocabulary, or a prompt longer than
// max_position_embeddings. on_token (optional) sees each id as it is chosen.
GenerateResult generate(Model& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt,
                        const std::function<void(int32_t)>& on_token = nullptr);

}  // namespace tessera
