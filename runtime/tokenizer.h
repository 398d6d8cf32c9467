// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json), reproduced exactly.
//
// Supported: BPE models (merges as "a b" or ["a","b"], byte_fallback, unk_token, fuse_unk,
// ignore_merges, continuing_subword_prefix, end_of_word_suffix); normalizers NFC, NFD, NFKC,
// NFKD, Lowercase, Prepend, Replace, Strip, Sequence; pre-tokenizers ByteLevel, Split, Digits,
// Metaspace, Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// Sequence; post-processors TemplateProcessing, ByteLevel, Sequence; added tokens (special or
// not, lstrip, rstrip, single_word, normalized). Anything else fails at load with a UserError
// naming the component, e.g. `tokenizer.json: unsupported pre_tokenizer type "Whitespace"`.
//
// Behaviour follows Hugging Face's reference implementations (the goldens in
// ../shared/testdata come from @huggingface/tokenizers 0.2.0). Choices where the input is
// outside what HF's own API can receive:
// - Invalid UTF-8 in encode()'s text is not an error: each ill-formed sequence is replaced by
//   U+FFFD first (the "maximal subpart" rule of JavaScript's TextDecoder and Python's
//   bytes.decode(errors="replace")), which is what HF tokenizes after its host decoded the bytes.
// - decode() of an id outside the vocabulary is a UserError (HF would silently emit unk).
// - Byte sequences that do not form valid UTF-8 after decoding (e.g. a lone "<0xE4>") become
//   U+FFFD, as in HF.
// The Tokenizer is immutable after loading and safe to use from several threads.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. UserError naming the
  // file when it is missing or invalid.
  static Tokenizer from_dir(const std::string& dir);
  // From the two files' contents; `tokenizer_config_json` may be empty.
  static Tokenizer from_json(const std::string& tokenizer_json,
                             const std::string& tokenizer_config_json);

  // add_special_tokens: apply the post-processor (e.g. Llama's leading <s>).
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  // id_to_token: the vocabulary string (byte-level form for GPT-2 style vocabularies); UserError
  // outside the vocabulary. token_to_id: added tokens first, then the model's vocabulary.
  std::string id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(const std::string& token) const;
  // One past the largest id, added tokens included.
  int64_t vocab_size() const;

  // From tokenizer_config.json's bos_token / eos_token (a string or {"content": ...}).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::string bos_token() const;  // empty when there is none
  std::string eos_token() const;
  // Special added tokens and tokenizer_config's additional_special_tokens.
  bool is_special(int32_t id) const;

  // Decoder output before clean_up_tokenization_spaces (used by IncrementalDecoder).
  std::string decode_raw(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  bool clean_up_tokenization_spaces() const;

 private:
  explicit Tokenizer(std::shared_ptr<const tok::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const tok::TokenizerImpl> impl_;
};

// transformers' clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...), which decode()
// applies when tokenizer_config.json's clean_up_tokenization_spaces is true (its default).
std::string clean_up_tokenization(std::string text);

// Turns generated ids into text as they arrive, for streaming. Each push() returns the text
// that became final with that id: never a partial UTF-8 sequence (a character split over
// byte-fallback or byte-level tokens is held back until complete), and the concatenation of
// every push() plus flush() equals tokenizer.decode(generated ids, skip_special_tokens)
// exactly, SentencePiece's leading-space rule included.
//
// Method (as vLLM and TGI do): keep a prefix offset and a read offset into the ids; decode the
// window [prefix, end) and the already-emitted part [prefix, read); the difference is new text
// once it no longer ends in U+FFFD. Decoding both from the same start makes position-dependent
// decoder steps (Strip/Metaspace dropping the first leading space) cancel out, and the window
// stays a few tokens long, so each push costs O(1) tokens of decoding. The very first window
// starts at the first generated id, so its leading space is dropped just as decode() drops it.
// With clean_up_tokenization_spaces, text from a space in the last 4 bytes is held back until
// it can no longer be part of a " ." / " n't" ... pattern.
//
// prompt_ids are accepted for interface stability and do not change the output (which is
// defined as the decode of the generated ids alone).
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                     std::vector<int32_t> prompt_ids = {});
  std::string push(int32_t id);  // UserError for an id outside the vocabulary
  std::string flush();

 private:
  std::string emit(std::string text, bool final);
  Tokenizer tok_;  // a cheap handle sharing the loaded tokenizer
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0, read_ = 0;
  std::string held_;  // clean-up hold-back
};

}  // namespace tessera
