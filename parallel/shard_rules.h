// Sharding as data: each checkpoint tensor's split rule, found by its name, and the slice of
// it that one rank holds. The model code never mentions ranks; a row-split linear's output is
// a partial sum, and that is what triggers the all-reduce.
#pragma once
#include <cstdint>
#include <string>

#include "parallel/world.h"
#include "runtime/model_config.h"

namespace tessera {

enum class SplitKind {
  Replicated,  // every rank holds all of it (norms)
  Column,      // split the output features (dim 0 of [out, in]): q/k/v, gate/up (+ bias)
  Row,         // split the input features (dim 1): o_proj, down_proj -> partial sums
  Vocab,       // split the vocabulary (dim 0): embedding, lm_head
};

// Heads decide where column splits of q/k/v fall, so a rank never holds half a head.
enum class SplitUnit { Features, QueryHeads, KvHeads };

struct ShardRule {
  SplitKind kind = SplitKind::Replicated;
  SplitUnit unit = SplitUnit::Features;
};

// The rule for a Hugging Face tensor name ("model.layers.3.self_attn.q_proj.weight").
ShardRule shard_rule_for(const std::string& tensor_name);

// The part of one dimension this rank holds: [begin, end).
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// This rank's range along the split dimension of a tensor whose split dimension has `full`
// elements. Throws UserError when the model cannot be split over world.size ranks.
Range shard_range(const ShardRule& rule, const ModelConfig& cfg, int64_t full, const World& w);

// Per-rank sizes that follow from the rules.
struct LocalDims {
  int64_t num_heads, num_kv_heads, intermediate, vocab_begin, vocab_local;
};
LocalDims local_dims(const ModelConfig& cfg, const World& w);

// Throws UserError listing valid tp sizes when cfg cannot run on w.size ranks.
void check_tp_compatible(const ModelConfig& cfg, int tp);

}  // namespace tessera
