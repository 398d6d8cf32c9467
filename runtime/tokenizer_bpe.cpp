#include "runtime/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "runtime/error.h"
#include "runtime/tokenizer_components.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera::tok {

BpeModel::BpeModel(const nlohmann::json& m) {
  const auto& vocab = m.at("vocab");
  if (!vocab.is_object()) throw UserError("tokenizer.json: BPE model \"vocab\" must be an object");
  vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = token_id(it.value(), 4 * int64_t(vocab.size()) + 1024,
                                "BPE vocab entry \"" + it.key() + "\"");
    vocab_[it.key()] = id;
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      has_id_.resize(id + 1, false);
    }
    id_to_token_[id] = it.key();
    has_id_[id] = true;
  }
  auto str = [&](const char* key) {
    return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : std::string();
  };
  continuing_subword_prefix_ = str("continuing_subword_prefix");
  end_of_word_suffix_ = str("end_of_word_suffix");
  if (m.contains("unk_token") && m["unk_token"].is_string()) unk_id_ = token_to_id(str("unk_token"));
  byte_fallback_ = m.value("byte_fallback", false);
  fuse_unk_ = m.value("fuse_unk", false);
  ignore_merges_ = m.value("ignore_merges", false);
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    throw UserError("tokenizer.json: unsupported BPE option \"dropout\"");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids_[b] = token_to_id(name).value_or(-1);
  }

  // Merges come as "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
  const auto& merges = m.at("merges");
  merges_.reserve(merges.size() * 2);
  int32_t rank = 0;
  for (const auto& mg : merges) {
    std::string a, b;
    if (mg.is_string()) {
      const std::string& s = mg.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) throw UserError("tokenizer.json: bad BPE merge \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      a = mg[0].get<std::string>();
      b = mg[1].get<std::string>();
    } else {
      throw UserError("tokenizer.json: bad BPE merge " + mg.dump());
    }
    auto ia = token_to_id(a), ib = token_to_id(b);
    // The merged token drops the right part's continuing-subword prefix ("##").
    std::string_view rest = b;
    if (!continuing_subword_prefix_.empty() && rest.substr(0, continuing_subword_prefix_.size()) ==
                                                   continuing_subword_prefix_)
      rest.remove_prefix(continuing_subword_prefix_.size());
    auto inew = token_to_id(a + std::string(rest));
    // A merge whose parts or result are not tokens can never fire; HF rejects such files, the
    // JS port ignores the merge. We ignore it too.
    if (ia && ib && inew) merges_.emplace(pair_key(*ia, *ib), Merge{rank, *inew});
    ++rank;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::move(key), std::move(ids));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  std::string piece;
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    i += utf8_len(static_cast<unsigned char>(word[i]));
    if (i > word.size()) i = word.size();
    piece.clear();
    if (start > 0) piece += continuing_subword_prefix_;
    piece.append(word.substr(start, i - start));
    if (i == word.size()) piece += end_of_word_suffix_;
    auto push = [&](int32_t id) {
      syms.push_back({id, static_cast<int32_t>(syms.size()) - 1, static_cast<int32_t>(syms.size()) + 1});
    };
    if (auto id = token_to_id(piece)) {
      push(*id);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (size_t k = start; k < i; ++k) all = all && byte_ids_[static_cast<unsigned char>(word[k])] >= 0;
      if (all) {
        for (size_t k = start; k < i; ++k) push(byte_ids_[static_cast<unsigned char>(word[k])]);
        last_unk = false;
        continue;
      }
    }
    if (unk_id_ && !(fuse_unk_ && last_unk)) push(*unk_id_);
    last_unk = unk_id_.has_value();
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  // Lowest rank first; equal ranks leftmost first (the position tie-break HF uses).
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> pq;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || syms[pos].next < 0) return;
    auto it = merges_.find(pair_key(syms[pos].id, syms[syms[pos].next].id));
    if (it != merges_.end()) pq.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t p = 0; p + 1 < static_cast<int32_t>(syms.size()); ++p) consider(p);
  std::vector<bool> dead(syms.size(), false);
  while (!pq.empty()) {
    Cand c = pq.top();
    pq.pop();
    if (dead[c.pos] || syms[c.pos].next < 0) continue;
    int32_t nx = syms[c.pos].next;
    // Stale entry: the pair at pos changed since it was queued.
    auto it = merges_.find(pair_key(syms[c.pos].id, syms[nx].id));
    if (it == merges_.end() || it->second.rank != c.rank) continue;
    syms[c.pos].id = c.new_id;
    dead[nx] = true;
    syms[c.pos].next = syms[nx].next;
    if (syms[nx].next >= 0) syms[syms[nx].next].prev = c.pos;
    consider(syms[c.pos].prev);
    consider(c.pos);
  }
  for (int32_t p = 0; p >= 0; p = syms[p].next) out.push_back(syms[p].id);
}

}  // namespace tessera::tok
