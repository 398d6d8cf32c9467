// Request parsing for the OpenAI-compatible routes. Field names and ranges follow the
// OpenAI API reference; extensions (top_k, min_p, repetition_penalty, ignore_eos,
// stop_token_ids, skip_special_tokens) follow vLLM's names.
#include <limits>

#include "launcher/openai_api.h"
#include "runtime/error.h"

namespace tessera {

using nlohmann::json;

namespace {

ApiError bad(const std::string& param, const std::string& msg) { return ApiError(400, msg, param); }

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double fallback, double lo, double hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) throw bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(name, std::string("'") + name + "' must be between " + json(lo).dump() + " and " +
                        json(hi).dump() + ", got " + v->dump());
  return x;
}

int64_t integer(const json& body, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw bad(name, std::string("'") + name + "' must be an integer");
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    throw bad(name, std::string("'") + name + "' must be between " + std::to_string(lo) +
                        " and " + std::to_string(hi) + ", got " + std::to_string(x));
  return x;
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) throw bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

void check_model(const json& body, const ServedModel& m) {
  const json* v = field(body, "model");
  if (!v) return;  // like vLLM: the one served model
  if (!v->is_string()) throw bad("model", "'model' must be a string");
  if (v->get<std::string>() != m.name)
    throw ApiError(404, "The model `" + v->get<std::string>() + "` does not exist.", "model",
                   "NotFoundError", "model_not_found");
}

// Fields common to chat and completions.
void parse_common(const json& body, const ServedModel& m, ApiRequest& r) {
  check_model(body, m);
  const int64_t n = integer(body, "n", 1, 1, 1 << 20);
  if (n != 1) throw bad("n", "only n = 1 is supported");
  r.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) throw bad("stream_options", "'stream_options' needs 'stream': true");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  RequestSampling& s = r.engine.sampling;
  s.temperature = float(number(body, "temperature", 1.0, 0.0, 2.0));
  s.top_p = float(number(body, "top_p", 1.0, 0.0, 1.0));
  if (s.top_p <= 0.0f) throw bad("top_p", "'top_p' must be in (0, 1]");
  s.top_k = integer(body, "top_k", 0, -1, std::numeric_limits<int32_t>::max());
  s.min_p = float(number(body, "min_p", 0.0, 0.0, 1.0));
  s.presence_penalty = float(number(body, "presence_penalty", 0.0, -2.0, 2.0));
  s.frequency_penalty = float(number(body, "frequency_penalty", 0.0, -2.0, 2.0));
  s.repetition_penalty = float(number(body, "repetition_penalty", 1.0, 0.0, 2.0));
  if (s.repetition_penalty <= 0.0f)
    throw bad("repetition_penalty", "'repetition_penalty' must be in (0, 2]");
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) throw bad("seed", "'seed' must be an integer");
    s.seed = uint64_t(seed->get<int64_t>());
  }
  if (const json* bias = field(body, "logit_bias")) {
    if (!bias->is_object()) throw bad("logit_bias", "'logit_bias' must be an object");
    for (const auto& [key, value] : bias->items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
      }
      if (id < 0 || id >= m.vocab_size)
        throw bad("logit_bias", "logit_bias key '" + key + "' is not a token id in [0, " +
                                    std::to_string(m.vocab_size) + ")");
      if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100)
        throw bad("logit_bias", "logit_bias values must be numbers in [-100, 100]");
      s.logit_bias.emplace_back(int32_t(id), value.get<float>());
    }
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& x : *stop) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or a list of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or a list of strings");
    }
  }
  if (const json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) throw bad("stop_token_ids", "'stop_token_ids' must be a list of ids");
    for (const json& x : *ids) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= m.vocab_size)
        throw bad("stop_token_ids", "'stop_token_ids' entries must be token ids");
      r.engine.stop_token_ids.push_back(x.get<int32_t>());
    }
  }
  r.engine.ignore_eos = boolean(body, "ignore_eos", false);
  r.skip_special_tokens = boolean(body, "skip_special_tokens", true);
}

// max_tokens: given (>= 1), or whatever the context leaves after the prompt.
// (completions default to 16 like OpenAI's; chat to the room left).
void set_max_tokens(const json& body, const char* name, const ServedModel& m, ApiRequest& r,
                    int64_t fallback = -1) {
  const int64_t room = m.max_model_len - int64_t(r.engine.prompt.size());
  const json* v = field(body, name);
  if (!v && fallback > 0 && fallback <= room) {
    r.engine.max_tokens = fallback;
    return;
  }
  if (!v) {
    if (room < 1)
      throw bad("messages", "the prompt has " + std::to_string(r.engine.prompt.size()) +
                                " tokens, which leaves no room in this model's maximum context "
                                "length of " + std::to_string(m.max_model_len) + " tokens");
    r.engine.max_tokens = room;
    return;
  }
  if (!v->is_number_integer()) throw bad(name, std::string("'") + name + "' must be an integer");
  r.engine.max_tokens = v->get<int64_t>();
  if (r.engine.max_tokens < 1)
    throw bad(name, std::string("'") + name + "' must be at least 1, got " + v->dump());
  if (r.engine.max_tokens > room)
    throw bad(name, "this model's maximum context length is " + std::to_string(m.max_model_len) +
                        " tokens; the prompt has " + std::to_string(r.engine.prompt.size()) +
                        " tokens and " + name + " asks for " + v->dump() + " more");
}

}  // namespace

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

ApiRequest parse_chat_request(const std::string& text, const ServedModel& m) {
  const json body = parse_body(text);
  ApiRequest r;
  r.chat = true;
  parse_common(body, m, r);
  const json* msgs = field(body, "messages");
  if (!msgs) throw bad("messages", "'messages' is a required property");
  if (!msgs->is_array()) throw bad("messages", "'messages' must be a list of messages");
  if (msgs->empty()) throw bad("messages", "'messages' must not be empty");
  for (const json& msg : *msgs) {
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      throw bad("messages", "each message must be an object with a string 'role'");
    if (msg.contains("content") && !msg["content"].is_string() && !msg["content"].is_null() &&
        !msg["content"].is_array())
      throw bad("messages", "a message's 'content' must be a string or a list of parts");
  }
  if (!m.chat_template)
    throw bad("messages", "this model has no chat template; use /v1/completions");
  const bool logprobs = boolean(body, "logprobs", false);
  const int64_t top = integer(body, "top_logprobs", 0, 0, 20);
  if (field(body, "top_logprobs") && !logprobs)
    throw bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  r.top_logprobs = logprobs ? int32_t(top) : -1;
  r.engine.sampling.logprobs = r.top_logprobs;
  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(msgs->dump());
  for (auto& msg : messages) {  // content parts [{"type": "text", "text": ...}] -> one string
    if (!msg.contains("content") || !msg["content"].is_array()) continue;
    std::string joined;
    for (const auto& part : msg["content"]) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
          !part.contains("text") || !part["text"].is_string())
        throw bad("messages", "only text content parts are supported");
      joined += part["text"].get<std::string>();
    }
    msg["content"] = joined;
  }
  nlohmann::ordered_json tools;
  if (const json* t = field(body, "tools")) tools = nlohmann::ordered_json::parse(t->dump());
  std::string prompt;
  try {
    prompt = m.chat_template->render(messages, tools, true);
  } catch (const UserError& e) {
    throw bad("messages", std::string("the chat template failed: ") + e.what());
  }
  // The template writes the special tokens itself (as vLLM: add_special_tokens = false).
  r.engine.prompt = m.tokenizer->encode(prompt, false);
  if (r.engine.prompt.empty()) throw bad("messages", "the rendered prompt is empty");
  set_max_tokens(body, field(body, "max_completion_tokens") ? "max_completion_tokens"
                                                           : "max_tokens", m, r);
  return r;
}

ApiRequest parse_completion_request(const std::string& text, const ServedModel& m) {
  const json body = parse_body(text);
  ApiRequest r;
  parse_common(body, m, r);
  const json* p = field(body, "prompt");
  if (!p) throw bad("prompt", "'prompt' is a required property");
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
  if (p->is_string()) {
    r.engine.prompt = m.tokenizer->encode(p->get<std::string>(), true);
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number_integer()) {
    for (const json& x : *p) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= m.vocab_size)
        throw bad("prompt", "prompt token ids must be integers in [0, " +
                                std::to_string(m.vocab_size) + ")");
      r.engine.prompt.push_back(x.get<int32_t>());
    }
  } else if (p->is_array() && p->size() > 1) {
    throw bad("prompt", "only one prompt per request is supported");
  } else {
    throw bad("prompt", "'prompt' must be a string or a list of token ids");
  }
  if (r.engine.prompt.empty()) throw bad("prompt", "the prompt is empty");
  r.echo = boolean(body, "echo", false);
  if (r.echo)
    r.echo_text = p->is_string() ? p->get<std::string>() : m.tokenizer->decode(r.engine.prompt, false);
  r.top_logprobs = int32_t(integer(body, "logprobs", -1, 0, 5));
  r.engine.sampling.logprobs = r.top_logprobs;
  set_max_tokens(body, "max_tokens", m, r, 16);
  return r;
}

}  // namespace tessera
