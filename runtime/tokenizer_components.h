// The pipeline stages of a Hugging Face tokenizer, built from the sections of tokenizer.json.
// Internal to the tokenizer (runtime/tokenizer.h is the public API). Each factory throws
// UserError naming the component type when tokenizer.json asks for one tessera lacks.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tessera::tok {

using json = nlohmann::json;

// "tokenizer.json: unsupported <kind> type \"<type>\"".
[[noreturn]] void unsupported(const std::string& kind, const json& j);
// The "type" field of a component (UserError when missing).
std::string component_type(const std::string& kind, const json& j);
// A token id from tokenizer.json: an integer in [0, limit), else UserError naming `what`.
// Ids index dense tables, so limit keeps a stray huge id (2^31 - 1 would ask for 64 GiB)
// from becoming an allocation: callers pass a generous multiple of the vocabulary's size.
int32_t token_id(const json& v, int64_t limit, const std::string& what);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};
// nullptr for a JSON null.
std::unique_ptr<Normalizer> make_normalizer(const json& j);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits/rewrites one piece, appending the results to `out`. `section_index` is the index of
  // the added-token section the text came from (Metaspace's prepend_scheme "first" needs it).
  virtual void split(std::string_view piece, int section_index,
                     std::vector<std::string>& out) const = 0;
  // Applies split() to every piece.
  virtual void pre_tokenize(std::vector<std::string>& pieces, int section_index) const;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j);

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (some decoders fuse them into fewer strings).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
// `added_tokens`: contents of the added tokens, which the ByteLevel decoder passes through as
// text instead of mapping their characters back to bytes. It must outlive the decoder.
std::unique_ptr<Decoder> make_decoder(const json& j,
                                      const std::unordered_set<std::string>* added_tokens);

// Resolves a token string to its id (added tokens first, then the model vocabulary).
using TokenLookup = std::function<std::optional<int32_t>(const std::string&)>;

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};
std::unique_ptr<PostProcessor> make_post_processor(const json& j, const TokenLookup& lookup);
// The post-processor transformers builds for Llama-style configs (add_bos_token/add_eos_token)
// when tokenizer.json has none: [bos] $A [eos].
std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos,
                                                      std::optional<int32_t> eos);

// A "pattern" object: {"String": s} (a literal) or {"Regex": r}.
class Regex;
Regex make_pattern(const json& pattern, const std::string& what);

}  // namespace tessera::tok
