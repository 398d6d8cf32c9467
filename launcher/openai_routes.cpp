#include "launcher/openai_routes.h"

#include <atomic>
#include <cstdio>

#include "launcher/openai_session.h"
#include "runtime/error.h"

namespace tessera {

using nlohmann::json;

namespace {

void send_error(ResponseWriter& w, const ApiError& e) {
  w.respond(e.status, "application/json", openai_error_json(e.what(), e.type, e.param, e.code));
}

std::string next_id(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s-%012llx%06llx", prefix,
                (unsigned long long)(boot & 0xffffffffffffULL),
                (unsigned long long)(counter.fetch_add(1) & 0xffffff));
  return buf;
}

// Parses, validates against the engine, then streams or answers through an OpenAiSession.
void serve_generation(const HttpRequest& http, std::shared_ptr<ResponseWriter> w,
                      Engine& engine, const ServedModel& model, bool chat) {
  ApiRequest req;
  try {
    req = chat ? parse_chat_request(http.body, model) : parse_completion_request(http.body, model);
    if (auto problem = engine.check(req.engine))
      throw ApiError(400, *problem, chat ? "messages" : "prompt");
  } catch (const ApiError& e) {
    send_error(*w, e);
    return;
  } catch (const UserError& e) {  // e.g. the tokenizer rejected the text
    send_error(*w, ApiError(400, e.what()));
    return;
  }
  auto session = std::make_shared<OpenAiSession>(req, model, w, next_id(chat ? "chatcmpl" : "cmpl"));
  req.engine.on_token = [session](const SampledToken& t) { return session->on_token(t); };
  req.engine.on_finish = [session](const FinishEvent& ev) { session->on_finish(ev); };
  req.engine.cancelled = [w] { return w->client_gone(); };
  session->begin();
  uint64_t id = 0;
  try {
    id = engine.submit(std::move(req.engine));
  } catch (const std::exception& e) {
    if (req.stream) {
      w->send("data: " + openai_error_json(e.what(), "ServiceUnavailableError") + "\n\n");
      w->end_stream();
    } else {
      w->respond(503, "application/json", openai_error_json(e.what(), "ServiceUnavailableError"));
    }
    return;
  }
  w->on_disconnect([&engine, id] { engine.abort(id); });
  if (w->client_gone()) engine.abort(id);
}

void serve_tokenize(const HttpRequest& http, ResponseWriter& w, const ServedModel& m) {
  const json body = parse_body(http.body);
  std::vector<int32_t> ids;
  if (body.contains("messages")) {
    if (!m.chat_template) throw ApiError(400, "this model has no chat template", "messages");
    if (!body["messages"].is_array()) throw ApiError(400, "'messages' must be a list", "messages");
    const bool gen = body.value("add_generation_prompt", true);
    const std::string text = m.chat_template->render(
        nlohmann::ordered_json::parse(body["messages"].dump()), nullptr, gen);
    ids = m.tokenizer->encode(text, body.value("add_special_tokens", false));
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    ids = m.tokenizer->encode(body["prompt"].get<std::string>(),
                              body.value("add_special_tokens", true));
  } else {
    throw ApiError(400, "'prompt' (a string) or 'messages' is required", "prompt");
  }
  json out = {{"count", ids.size()}, {"max_model_len", m.max_model_len}, {"tokens", ids}};
  w.respond(200, "application/json", out.dump());
}

void serve_detokenize(const HttpRequest& http, ResponseWriter& w, const ServedModel& m) {
  const json body = parse_body(http.body);
  if (!body.contains("tokens") || !body["tokens"].is_array())
    throw ApiError(400, "'tokens' (a list of token ids) is required", "tokens");
  std::vector<int32_t> ids;
  for (const json& t : body["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= m.vocab_size)
      throw ApiError(400, "'tokens' entries must be token ids in [0, " +
                              std::to_string(m.vocab_size) + ")", "tokens");
    ids.push_back(t.get<int32_t>());
  }
  w.respond(200, "application/json", json{{"prompt", m.tokenizer->decode(ids, false)}}.dump());
}

// Runs a handler, mapping ApiError / UserError to their JSON error responses.
HttpHandler guarded(std::function<void(const HttpRequest&, ResponseWriter&)> fn) {
  return [fn](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    try {
      fn(req, *w);
    } catch (const ApiError& e) {
      send_error(*w, e);
    } catch (const UserError& e) {
      send_error(*w, ApiError(400, e.what()));
    }
  };
}

}  // namespace

void add_openai_routes(HttpServer& server, Engine& engine, const ServedModel& model) {
  server.route("POST", "/v1/chat/completions",
               [&](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
                 serve_generation(r, std::move(w), engine, model, true);
               });
  server.route("POST", "/v1/completions",
               [&](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
                 serve_generation(r, std::move(w), engine, model, false);
               });
  server.route("GET", "/v1/models", guarded([&](const HttpRequest&, ResponseWriter& w) {
    json card = {{"id", model.name}, {"object", "model"}, {"created", model.created},
                 {"owned_by", "tessera"}, {"root", model.name},
                 {"max_model_len", model.max_model_len}};
    w.respond(200, "application/json", json{{"object", "list"}, {"data", {card}}}.dump());
  }));
  server.route("POST", "/tokenize", guarded([&](const HttpRequest& r, ResponseWriter& w) {
    serve_tokenize(r, w, model);
  }));
  server.route("POST", "/detokenize", guarded([&](const HttpRequest& r, ResponseWriter& w) {
    serve_detokenize(r, w, model);
  }));
  server.route("GET", "/health", guarded([](const HttpRequest&, ResponseWriter& w) {
    w.respond(200, "application/json", "{}");
  }));
  server.route("GET", "/metrics", guarded([&](const HttpRequest&, ResponseWriter& w) {
    w.respond(200, "text/plain; version=0.0.4", engine.metrics().render());
  }));
}

}  // namespace tessera
