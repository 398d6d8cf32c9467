// Stop strings over streamed text. Holds back generated text that could still become a stop
// string, so a stop string is never emitted even when it spans token boundaries
// (vLLM/OpenAI: the stop string itself is not returned, nor anything after it).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);  // empty strings are ignored

  struct Result {
    std::string emit;      // safe to send now
    bool stopped = false;  // a stop string matched: done, the rest is discarded
    int stop_index = -1;   // when stopped: which one, as an index into the constructor's list
  };
  // text_delta: complete UTF-8 (from an incremental detokenizer). After a stop, every call
  // returns an empty emit with stopped = true.
  Result feed(std::string_view text_delta);
  std::string flush();  // at the end (not stopped): whatever was held back; "" after a stop

  bool stopped() const { return stopped_; }
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;  // non-empty ones only
  std::vector<int> index_;          // stops_[i] was the constructor's index_[i]
  size_t max_len_ = 0;
  std::string held_;  // a suffix of the text so far that is a proper prefix of some stop
  bool stopped_ = false;
};

}  // namespace tessera
