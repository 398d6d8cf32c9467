// IncrementalDecoder: streaming detokenization (see tokenizer.h for the method).
#include "runtime/tokenizer.h"

#include "runtime/error.h"

namespace tessera {

namespace {
bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens,
                                       std::vector<int32_t> /*prompt_ids*/)
    : tok_(tokenizer), skip_special_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  if (id < 0 || id >= tok_.vocab_size()) tok_.id_to_token(id);  // throws the UserError
  // Skipped special tokens never enter the window: an empty-decoding prefix would defeat the
  // leading-space cancellation the window relies on.
  if (skip_special_ && tok_.is_special(id)) return "";
  ids_.push_back(id);
  std::vector<int32_t> window(ids_.begin() + prefix_, ids_.end());
  std::vector<int32_t> done(ids_.begin() + prefix_, ids_.begin() + read_);
  std::string prefix_text = tok_.decode_raw(done, false);
  std::string new_text = tok_.decode_raw(window, false);
  // Wait while the text ends in an incomplete character, or decodes to nothing new yet.
  if (new_text.size() <= prefix_text.size() || ends_with_replacement(new_text) ||
      new_text.compare(0, prefix_text.size(), prefix_text) != 0)
    return "";
  std::string delta = new_text.substr(prefix_text.size());
  prefix_ = read_;
  read_ = ids_.size();
  return emit(std::move(delta), false);
}

std::string IncrementalDecoder::flush() {
  std::string delta;
  if (read_ < ids_.size()) {
    std::vector<int32_t> window(ids_.begin() + prefix_, ids_.end());
    std::vector<int32_t> done(ids_.begin() + prefix_, ids_.begin() + read_);
    std::string prefix_text = tok_.decode_raw(done, false);
    std::string new_text = tok_.decode_raw(window, false);
    if (new_text.compare(0, prefix_text.size(), prefix_text) == 0)
      delta = new_text.substr(prefix_text.size());
    else
      delta = new_text.size() > prefix_text.size() ? new_text.substr(prefix_text.size()) : "";
    prefix_ = read_ = ids_.size();
  }
  return emit(std::move(delta), true);
}

std::string IncrementalDecoder::emit(std::string text, bool final) {
  if (!tok_.clean_up_tokenization_spaces()) return text;
  // The clean-up patterns (" .", " n't", ...) start with a space and are at most 4 bytes, so
  // text from the first space among the last 4 bytes may still change: hold it back.
  std::string all = held_ + text;
  held_.clear();
  size_t cut = all.size();
  if (!final) {
    size_t from = all.size() >= 4 ? all.size() - 4 : 0;
    size_t sp = all.find(' ', from);
    if (sp != std::string::npos) cut = sp;
  }
  held_ = all.substr(cut);
  return clean_up_tokenization(all.substr(0, cut));
}

}  // namespace tessera
