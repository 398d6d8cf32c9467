// One OpenAI request in flight: turns the engine's tokens into text (incremental
// detokenization, stop strings held back and never emitted) and writes either SSE chunks as
// they come or one JSON response at the end. Its callbacks run on the engine thread.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "launcher/http_server.h"
#include "launcher/openai_api.h"
#include "runtime/stop_matcher.h"

namespace tessera {

class OpenAiSession {
 public:
  OpenAiSession(const ApiRequest& req, const ServedModel& model,
                std::shared_ptr<ResponseWriter> writer, std::string id);
  void begin();                               // streaming: headers + the role chunk
  bool on_token(const SampledToken& tok);     // true: a stop string matched, finish now
  void on_finish(const FinishEvent& ev);

 private:
  struct TokenLogprob {
    std::string token;
    float logprob;
    std::vector<std::pair<std::string, float>> top;
  };
  std::string token_text(int32_t id) const;
  void send_chunk(const std::string& text, const char* finish_reason);
  nlohmann::json logprobs_json(const std::vector<TokenLogprob>& lps, size_t text_offset) const;
  nlohmann::json usage_json(const FinishEvent& ev) const;
  nlohmann::json envelope(const char* object) const;

  bool chat_, stream_, include_usage_, want_logprobs_;
  const ServedModel& model_;
  std::shared_ptr<ResponseWriter> writer_;
  std::string id_;
  IncrementalDecoder decoder_;
  StopMatcher stop_;
  std::string text_;                       // everything emitted (non-streaming answer)
  std::vector<TokenLogprob> logprobs_;     // all (non-streaming) or since the last chunk
  bool stopped_by_string_ = false;
  std::string echo_;
};

}  // namespace tessera
