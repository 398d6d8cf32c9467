// The routes of `tessera serve`: OpenAI's /v1/chat/completions, /v1/completions, /v1/models,
// vLLM's /tokenize and /detokenize, /health and Prometheus /metrics.
#pragma once
#include "launcher/http_server.h"
#include "launcher/openai_api.h"
#include "runtime/engine.h"

namespace tessera {

// `engine` and `model` must outlive the server.
void add_openai_routes(HttpServer& server, Engine& engine, const ServedModel& model);

}  // namespace tessera
