// OpenAI-compatible API: JSON request bodies -> engine requests (validated, 400s with the
// offending parameter named), and engine outputs -> response / stream-chunk JSON.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat_template.h"
#include "runtime/engine.h"
#include "runtime/tokenizer.h"

namespace tessera {

struct ServedModel {
  std::string name;                        // the id clients send as "model"
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;  // null: /v1/chat/completions answers 400
  int64_t max_model_len = 0;
  int64_t vocab_size = 0;
  int64_t created = 0;  // unix time the server started
};

// An error to return to the client as {"error": {...}} with this HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "",
           std::string type = "invalid_request_error", std::string code = "")
      : std::runtime_error(message), status(status), param(std::move(param)),
        type(std::move(type)), code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

struct ApiRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;      // stream_options.include_usage
  EngineRequest engine;            // prompt, sampling, limits (callbacks unset)
  std::vector<std::string> stop;   // stop strings, never part of the output
  int32_t top_logprobs = -1;       // -1: no logprobs; else alternatives per token
  bool echo = false;               // completions: prepend the prompt text
  std::string echo_text;           // that text
  bool skip_special_tokens = true;
};

// Parse + validate; throw ApiError. The context-length check (prompt + max_tokens) is the
// engine's (Engine::check), as max_tokens defaults to whatever the context leaves.
ApiRequest parse_chat_request(const std::string& body, const ServedModel& m);
ApiRequest parse_completion_request(const std::string& body, const ServedModel& m);

// Parses a JSON body: ApiError 400 for malformed JSON or a non-object.
nlohmann::json parse_body(const std::string& body);

}  // namespace tessera
