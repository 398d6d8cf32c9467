#include "parallel/shard_rules.h"

#include <string>

#include "runtime/error.h"

namespace tessera {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The table: name pattern (suffix, before ".weight"/".bias") -> rule.
struct Entry {
  const char* suffix;
  ShardRule rule;
};
const Entry kRules[] = {
    {"self_attn.q_proj", {SplitKind::Column, SplitUnit::QueryHeads}},
    {"self_attn.k_proj", {SplitKind::Column, SplitUnit::KvHeads}},
    {"self_attn.v_proj", {SplitKind::Column, SplitUnit::KvHeads}},
    {"self_attn.o_proj", {SplitKind::Row, SplitUnit::QueryHeads}},
    {"mlp.gate_proj", {SplitKind::Column, SplitUnit::Features}},
    {"mlp.up_proj", {SplitKind::Column, SplitUnit::Features}},
    {"mlp.down_proj", {SplitKind::Row, SplitUnit::Features}},
    {"embed_tokens", {SplitKind::Vocab, SplitUnit::Features}},
    {"lm_head", {SplitKind::Vocab, SplitUnit::Features}},
};

bool valid_tp(const ModelConfig& c, int tp) {
  if (tp < 1 || c.num_heads % tp != 0 || c.intermediate_size % tp != 0) return false;
  if (c.num_kv_heads >= tp) return c.num_kv_heads % tp == 0;
  return tp % c.num_kv_heads == 0;  // kv heads replicated
}

}  // namespace

ShardRule shard_rule_for(const std::string& name) {
  std::string base = name;
  for (const char* s : {".weight", ".bias"})
    if (ends_with(base, s)) base.resize(base.size() - std::string(s).size());
  for (const auto& e : kRules)
    if (ends_with(base, e.suffix)) return e.rule;
  return ShardRule{};
}

void check_tp_compatible(const ModelConfig& c, int tp) {
  if (valid_tp(c, tp)) return;
  std::string valid;
  for (int t = 1; t <= c.num_heads; ++t)
    if (valid_tp(c, t)) valid += (valid.empty() ? "" : ", ") + std::to_string(t);
  throw UserError("cannot split this model over tp=" + std::to_string(tp) + " ranks (" +
                  std::to_string(c.num_heads) + " attention heads, " +
                  std::to_string(c.num_kv_heads) + " kv heads, intermediate size " +
                  std::to_string(c.intermediate_size) + "); valid tp sizes: " + valid);
}

LocalDims local_dims(const ModelConfig& c, const World& w) {
  check_tp_compatible(c, w.size);
  LocalDims d;
  d.num_heads = c.num_heads / w.size;
  d.num_kv_heads = c.num_kv_heads >= w.size ? c.num_kv_heads / w.size : 1;
  d.intermediate = c.intermediate_size / w.size;
  const int64_t per = (c.vocab_size + w.size - 1) / w.size;
  d.vocab_begin = std::min<int64_t>(c.vocab_size, per * w.rank);
  d.vocab_local = std::min<int64_t>(c.vocab_size, d.vocab_begin + per) - d.vocab_begin;
  return d;
}

Range shard_range(const ShardRule& rule, const ModelConfig& c, int64_t full, const World& w) {
  if (rule.kind == SplitKind::Replicated || w.size == 1) return {0, full};
  const LocalDims d = local_dims(c, w);
  if (rule.kind == SplitKind::Vocab) return {d.vocab_begin, d.vocab_begin + d.vocab_local};
  switch (rule.unit) {
    case SplitUnit::QueryHeads:
      return {w.rank * d.num_heads * c.head_dim, (w.rank + 1) * d.num_heads * c.head_dim};
    case SplitUnit::KvHeads: {
      // With fewer kv heads than ranks, tp / kv_heads consecutive ranks share one kv head.
      const int64_t first = c.num_kv_heads >= w.size
                                ? w.rank * d.num_kv_heads
                                : w.rank / (w.size / c.num_kv_heads);
      return {first * c.head_dim, (first + d.num_kv_heads) * c.head_dim};
    }
    case SplitUnit::Features:
      return {w.rank * (full / w.size), (w.rank + 1) * (full / w.size)};
  }
  return {0, full};
}

}  // namespace tessera
