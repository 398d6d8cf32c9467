#include "launcher/openai_session.h"

#include <cmath>

namespace tessera {

using nlohmann::json;

OpenAiSession::OpenAiSession(const ApiRequest& req, const ServedModel& model,
                             std::shared_ptr<ResponseWriter> writer, std::string id)
    : chat_(req.chat),
      stream_(req.stream),
      include_usage_(req.include_usage),
      want_logprobs_(req.top_logprobs >= 0),
      model_(model),
      writer_(std::move(writer)),
      id_(std::move(id)),
      decoder_(*model.tokenizer, req.skip_special_tokens, req.engine.prompt),
      stop_(req.stop),
      echo_(req.echo ? req.echo_text : "") {}

json OpenAiSession::envelope(const char* object) const {
  return json{{"id", id_}, {"object", object}, {"created", model_.created},
              {"model", model_.name}};
}

std::string OpenAiSession::token_text(int32_t id) const {
  return model_.tokenizer->decode({id}, false);
}

json OpenAiSession::usage_json(const FinishEvent& ev) const {
  return json{{"prompt_tokens", ev.prompt_tokens},
              {"completion_tokens", ev.completion_tokens},
              {"total_tokens", ev.prompt_tokens + ev.completion_tokens}};
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}. Completions:
// the legacy {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}.
json OpenAiSession::logprobs_json(const std::vector<TokenLogprob>& lps, size_t offset) const {
  auto bytes = [](const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(int(c));
    return b;
  };
  if (chat_) {
    json content = json::array();
    for (const TokenLogprob& t : lps) {
      json top = json::array();
      for (const auto& [tok, lp] : t.top)
        top.push_back({{"token", tok}, {"logprob", lp}, {"bytes", bytes(tok)}});
      content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes(t.token)},
                         {"top_logprobs", top}});
    }
    return json{{"content", content}};
  }
  json tokens = json::array(), values = json::array(), tops = json::array(),
       offsets = json::array();
  for (const TokenLogprob& t : lps) {
    tokens.push_back(t.token);
    values.push_back(t.logprob);
    json top = json::object();
    for (const auto& [tok, lp] : t.top) top[tok] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += t.token.size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops},
              {"text_offset", offsets}};
}

void OpenAiSession::begin() {
  if (!stream_) return;
  writer_->start_stream(200);
  if (chat_) {
    json c = envelope("chat.completion.chunk");
    c["choices"] = json::array({{{"index", 0},
                                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", nullptr}}});
    if (include_usage_) c["usage"] = nullptr;
    writer_->send("data: " + c.dump() + "\n\n");
  }
  if (!echo_.empty()) send_chunk(echo_, nullptr);
}

void OpenAiSession::send_chunk(const std::string& text, const char* finish_reason) {
  json choice = {{"index", 0}, {"logprobs", nullptr},
                 {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  if (chat_)
    choice["delta"] = text.empty() && finish_reason ? json::object() : json{{"content", text}};
  else
    choice["text"] = text;
  if (want_logprobs_ && !logprobs_.empty()) {
    choice["logprobs"] = logprobs_json(logprobs_, text_.size());
    logprobs_.clear();
  }
  text_ += text;
  json c = envelope(chat_ ? "chat.completion.chunk" : "text_completion");
  c["choices"] = json::array({choice});
  if (include_usage_) c["usage"] = nullptr;
  writer_->send("data: " + c.dump() + "\n\n");
}

bool OpenAiSession::on_token(const SampledToken& tok) {
  if (want_logprobs_) {
    TokenLogprob t{token_text(tok.id), tok.logprob, {}};
    for (const auto& alt : tok.top) t.top.emplace_back(token_text(alt.id), alt.logprob);
    logprobs_.push_back(std::move(t));
  }
  StopMatcher::Result r = stop_.feed(decoder_.push(tok.id));
  stopped_by_string_ = r.stopped;
  if (stream_ && (!r.emit.empty() || (want_logprobs_ && !r.stopped))) send_chunk(r.emit, nullptr);
  else if (!stream_) text_ += r.emit;
  return r.stopped;
}

void OpenAiSession::on_finish(const FinishEvent& ev) {
  if (ev.reason == FinishReason::Error && !stream_) {
    writer_->respond(500, "application/json",
                     openai_error_json("generation failed: " + ev.error, "InternalServerError"));
    return;
  }
  std::string tail;
  if (!stopped_by_string_) {
    StopMatcher::Result r = stop_.feed(decoder_.flush());
    tail = r.emit;
    if (!r.stopped) tail += stop_.flush();
  }
  const char* reason = ev.reason == FinishReason::Length ? "length"
                       : ev.reason == FinishReason::Stop ? "stop"
                                                         : "abort";
  if (stream_) {
    if (ev.reason == FinishReason::Error) {
      writer_->send("data: " + openai_error_json("generation failed: " + ev.error,
                                                 "InternalServerError") + "\n\n");
    } else {
      send_chunk(tail, reason);
    }
    if (include_usage_) {
      json u = envelope(chat_ ? "chat.completion.chunk" : "text_completion");
      u["choices"] = json::array();
      u["usage"] = usage_json(ev);
      writer_->send("data: " + u.dump() + "\n\n");
    }
    writer_->send("data: [DONE]\n\n");
    writer_->end_stream();
    return;
  }
  text_ += tail;
  json choice = {{"index", 0}, {"finish_reason", reason}, {"logprobs", nullptr}};
  if (want_logprobs_) choice["logprobs"] = logprobs_json(logprobs_, echo_.size());
  json out = envelope(chat_ ? "chat.completion" : "text_completion");
  if (chat_)
    choice["message"] = {{"role", "assistant"}, {"content", text_}};
  else
    choice["text"] = echo_ + text_;
  out["choices"] = json::array({choice});
  out["usage"] = usage_json(ev);
  writer_->respond(200, "application/json", out.dump());
}

}  // namespace tessera
