#include "runtime/stop_matcher.h"

#include <algorithm>

namespace tessera {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;  // would match everywhere; OpenAI treats it as absent
    max_len_ = std::max(max_len_, stops[i].size());
    stops_.push_back(std::move(stops[i]));
    index_.push_back(int(i));
  }
}

// Matching is on bytes. Both the text and the stop strings are valid UTF-8, and a stop
// string starts with a lead byte, so a match or a held-back suffix always begins on a
// character boundary: what is emitted is complete UTF-8 too.
StopMatcher::Result StopMatcher::feed(std::string_view text_delta) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  if (stops_.empty()) {
    r.emit.assign(text_delta);
    return r;
  }
  // held_ contains no whole stop string (else we would have stopped), so any match ends in
  // the new delta; held_ is shorter than the longest stop, so this search is O(delta).
  std::string buf = std::move(held_);
  held_.clear();
  buf.append(text_delta);

  // The earliest match wins (when two stops complete in the same delta, the text stops at
  // the one that starts first; on the same start, the earlier in the list).
  size_t best = std::string::npos;
  int best_stop = -1;
  for (size_t s = 0; s < stops_.size(); ++s) {
    const size_t pos = buf.find(stops_[s]);
    if (pos < best) {
      best = pos;
      best_stop = int(s);
    }
  }
  if (best != std::string::npos) {
    stopped_ = true;
    r.stopped = true;
    r.stop_index = index_[size_t(best_stop)];
    buf.resize(best);
    r.emit = std::move(buf);
    return r;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string; everything
  // before it can never be part of a match, so it goes out now.
  size_t hold = 0;
  for (size_t len = std::min(buf.size(), max_len_ - 1); len > 0 && hold == 0; --len) {
    const std::string_view tail = std::string_view(buf).substr(buf.size() - len);
    for (const std::string& stop : stops_)
      if (stop.size() > len && std::string_view(stop).substr(0, len) == tail) {
        hold = len;
        break;
      }
  }
  held_ = buf.substr(buf.size() - hold);
  buf.resize(buf.size() - hold);
  r.emit = std::move(buf);
  return r;
}

std::string StopMatcher::flush() {
  std::string out = std::move(held_);
  held_.clear();
  if (stopped_) out.clear();
  return out;
}

}  // namespace tessera
