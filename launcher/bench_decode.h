// The decode rows of `tessera bench`: B sequences each adding one token per step, from a
// context of `depth` tokens (llama-bench's -d / --n-depth: decode speed at a long context,
// where attention reads depth tokens of K/V per layer per step).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/model.h"

namespace tessera {

constexpr int64_t kBenchBlockSize = 16;  // KV block size of every bench cache

struct DecodeSpec {
  int64_t batch = 1, steps = 64, depth = 0, repeats = 3;
};

// {"tokens_per_s"} (median of the repeats after an untimed warm-up; each repeat starts from
// the same depth-token contexts, prefilled once and untimed), "kv_blocks", "cuda_graphs", and
// with graphs also "tokens_per_s_no_graphs" and "graph_speedup".
nlohmann::json measure_decode(Model& m, const DecodeSpec& spec, std::mt19937& rng);

// Bytes one token of context occupies in this rank's KV cache (K, V and the int8 cache's
// scales, every layer): what attention reads per context token per decode step.
uint64_t kv_bytes_per_token(const Model& m);

}  // namespace tessera
