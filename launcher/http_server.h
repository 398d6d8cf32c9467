// A generic asynchronous HTTP/1.1 server (Boost.Asio + Beast) for the OpenAI-compatible API.
// Each connection is independent: async reads and writes on a per-connection strand, so a
// slow or vanishing client never stalls another connection or an io thread. A handler gets a
// ResponseWriter it may keep and call later from any thread (the engine thread streams
// tokens through it). Boost stays out of this header: the implementation is behind a pimpl.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tessera {

struct HttpRequest {
  std::string method, target, path, body;      // path = target without ?query
  std::map<std::string, std::string> headers;  // lower-case names; repeats joined with ", "
  int version = 11;                            // 10 = HTTP/1.0, 11 = HTTP/1.1
  std::string header(const std::string& lower_name) const;  // "" when absent
};

// Thread-safe: a handler may keep it and call it later from any thread. Calls after the client
// is gone (or the server stopped) are no-ops that return false. Exactly one of respond() or
// start_stream()..end_stream() per request; later calls are ignored.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual void respond(int status, const std::string& content_type, std::string body,
                       std::vector<std::pair<std::string, std::string>> extra_headers = {}) = 0;
  // Server-sent events: starts a chunked text/event-stream response.
  virtual void start_stream(int status = 200) = 0;
  virtual bool send(std::string data) = 0;  // one chunk (caller formats "data: ...\n\n")
  virtual void end_stream() = 0;            // last chunk; connection then reads the next request
  virtual bool client_gone() const = 0;
  // Called once (on a server thread) when the client disconnects, or the server stops, before
  // respond()/end_stream() was called (while a stream is open or before the handler
  // responded). Set after the disconnect was seen, it is called right away.
  virtual void on_disconnect(std::function<void()> fn) = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, std::shared_ptr<ResponseWriter>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                       // 0: pick a free port (tests)
  std::size_t max_body_bytes = 8 << 20;  // larger => 413
  static constexpr std::size_t kMaxHeaderBytes = 64 * 1024;  // request line + fields; => 431
  std::string api_key;  // non-empty: paths starting with /v1/ need "Authorization: Bearer KEY"
  int threads = 2;
  int idle_timeout_ms = 30000;  // no (complete) request within this long: the socket is closed
};

// OpenAI-style error JSON: {"error": {"message", "type", "param", "code"}} (param/code null
// when empty).
std::string openai_error_json(const std::string& message, const std::string& type,
                              const std::string& param = "", const std::string& code = "");

namespace http_detail {
struct ServerCore;
}

class HttpServer {
 public:
  // Binds and listens now; throws UserError when the address/port cannot be bound.
  explicit HttpServer(HttpServerOptions opt);
  ~HttpServer();  // stops; writers kept by handlers become no-ops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Exact path, or a prefix when the path ends in "/*" ("/v1/models/*"). Call before run().
  // Unknown path => 404, known path with another method => 405. HEAD without a route of its
  // own runs GET's handler and sends its headers only (so do errors answering a HEAD).
  void route(const std::string& method, const std::string& path, HttpHandler handler);
  int port() const;  // the bound port
  void run();        // blocks until stop(); runs `threads` io threads
  void stop();       // thread-safe; closes the listener and the connections, ends run()
  // Installs SIGINT/SIGTERM handling that calls on_signal (if any) then stop(). Call before
  // run().
  void stop_on_signals(std::function<void()> on_signal = nullptr);

 private:
  std::shared_ptr<http_detail::ServerCore> core_;
};

}  // namespace tessera
