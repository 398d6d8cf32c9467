// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tessera::tok {

class BpeModel {
 public:
  // Throws UserError for a malformed model section.
  explicit BpeModel(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word. Characters missing from the vocabulary become
  // byte tokens (byte_fallback), else unk_token (consecutive ones fused with fuse_unk), else
  // are dropped, as Hugging Face's BPE does.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of `id`, or nullptr when the model has no such id.
  const std::string* id_to_token(int32_t id) const;
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_, end_of_word_suffix_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // id of "<0xXX>", or -1

  // Pre-tokenized words repeat a lot (" the", " and"), so their ids are cached. Bounded: the
  // cache is simply cleared when full, which keeps memory flat on adversarial input.
  static constexpr size_t kCacheCapacity = 65536;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace tessera::tok
