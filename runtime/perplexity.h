// Perplexity of a token sequence under the model, with the protocol of
// ../shared/testdata/perplexity/TinyStories-656K.ppl.json: the ids are cut into consecutive
// windows of `window` tokens (stride window, the last one shorter); each window runs from an
// empty KV cache and every token but its first is scored (predicted from the tokens before
// it in the window); perplexity = exp(total NLL / scored tokens).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "runtime/model.h"

namespace tessera {

struct PerplexityResult {
  double total_nll = 0;  // natural log, summed over the scored tokens
  int64_t scored = 0;    // tokens scored
  int64_t windows = 0;
  double perplexity() const { return std::exp(total_nll / double(scored)); }
};

// Collective under tensor parallel (every rank calls it with the same ids; each gets the
// result). UserError when fewer than 2 ids, window < 2, or window > max_position_embeddings.
PerplexityResult evaluate_perplexity(Model& m, const std::vector<int32_t>& ids, int64_t window);

}  // namespace tessera
