// Per-rank memory after loading: the weight bytes this rank holds and its resident set
// (VmRSS), gathered on every rank so rank 0 can report them.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "parallel/comm.h"
#include "runtime/weights.h"

namespace tessera {

struct RankMemory {
  double weights_bytes = 0;
  double rss_bytes = 0;
};

// Collective: every rank must call it. Result in rank order.
std::vector<RankMemory> gather_rank_memory(Comm& comm, const ModelWeights& w);
nlohmann::json rank_memory_json(const std::vector<RankMemory>& m);

}  // namespace tessera
