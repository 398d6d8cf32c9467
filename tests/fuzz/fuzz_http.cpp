// The fuzz target "http_connection": the bytes a client sends on one connection to tessera's
// HTTP server (launcher/http_server.h), which then half-closes and reads what comes back. The
// server has routes shaped like the OpenAI API's (an API key on /v1/, JSON answers, an SSE
// stream and an answer sent later from another thread, like the engine's, a handler that
// throws). Whatever the bytes, what comes back must parse as HTTP/1.x responses, in step with
// the requests: no content after a response to HEAD, nothing after "Connection: close", at most
// one final response per request read (plus one for a malformed one), JSON errors, known
// statuses; and the server must still answer GET /health on a new connection.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "launcher/http_server.h"
#include "tests/fuzz/fuzz_targets.h"

namespace tessera::fuzz {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t kMaxBody = 256;  // small, so that inputs reach the 413
constexpr int kReadTimeoutMs = 5000;   // the server neither answering nor closing: a hang

// Runs tasks on one thread, like the engine thread that answers requests later.
class Later {
 public:
  Later() : thread_([this] { loop(); }) {}
  ~Later() {
    {
      std::lock_guard lock(m_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard lock(m_);
      tasks_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock lock(m_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      auto f = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      f();
      lock.lock();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

HttpServerOptions server_options() {
  HttpServerOptions o;
  o.port = 0;
  o.api_key = "k";
  o.max_body_bytes = kMaxBody;
  o.idle_timeout_ms = 2000;
  return o;
}

// Declaration order: the worker outlives the server (writers it holds then do nothing).
struct Server {
  Server() {
    using Writer = std::shared_ptr<ResponseWriter>;
    const std::string json = "application/json";
    http.route("GET", "/health", [json](const HttpRequest&, Writer w) {
      w->respond(200, json, "{}");
    });
    http.route("GET", "/v1/models", [json](const HttpRequest&, Writer w) {
      w->respond(200, json, R"({"object":"list","data":[]})");
    });
    http.route("GET", "/v1/models/*", [json](const HttpRequest& r, Writer w) {
      w->respond(404, json, openai_error_json("no model " + r.path, "invalid_request_error"));
    });
    http.route("POST", "/v1/completions", [this, json](const HttpRequest& r, Writer w) {
      later.post([w, json, n = r.body.size()] {
        w->respond(200, json, nlohmann::json{{"bytes", n}}.dump());
      });
    });
    http.route("POST", "/v1/chat/completions", [this](const HttpRequest& r, Writer w) {
      w->on_disconnect([] {});
      later.post([w, n = r.body.size() % 4] {
        w->start_stream();
        for (std::size_t i = 0; i < n; ++i) w->send(i == 1 ? "" : "data: {}\n\n");
        w->send("data: [DONE]\n\n");
        w->end_stream();
      });
    });
    http.route("POST", "/v1/embeddings", [](const HttpRequest&, Writer) {
      throw std::runtime_error("not implemented");
    });
    thread = std::thread([this] { http.run(); });
  }
  ~Server() {
    http.stop();
    thread.join();
  }
  Later later;
  HttpServer http{server_options()};
  std::thread thread;
};

int server_port() {
  static Server server;
  return server.http.port();
}

// Sends `bytes` on a new connection, half-closes when asked, returns everything read until
// the server closes (EOF or reset). The server takes a half-close for a client that left (it
// stops generating for it): what it was answering may be cut short or never sent. Blocking
// socket calls fail with EINTR when libFuzzer's -timeout alarm (SIGALRM, every few seconds)
// arrives; Asio's event loop waits again, so every step is an async operation run here.
std::string exchange(const std::string& bytes, bool half_close) {
  net::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  // Runs the operation `start` begins until it completes or 5 s pass (beast's timeout).
  auto run = [&](auto start) {
    error_code result;
    stream.expires_after(std::chrono::milliseconds(kReadTimeoutMs));
    start(result);
    ioc.restart();
    ioc.run();
    return result;
  };
  error_code ec;
  // From 127.0.0.2 .. 127.0.0.251 in turn: after a half-close this end keeps its port in
  // TIME_WAIT for 60 s, and ~1000 connections a second would use up one address's 28k ports.
  static uint32_t source = 0;
  source = (source + 1) % 250;
  stream.socket().open(tcp::v4(), ec);
  stream.socket().bind(tcp::endpoint(net::ip::address_v4(0x7f000002u + source), 0), ec);
  check(!ec, "binding a loopback source address");
  const tcp::endpoint server(net::ip::make_address("127.0.0.1"), uint16_t(server_port()));
  ec = run([&](error_code& r) { stream.async_connect(server, [&](error_code e) { r = e; }); });
  if (ec) std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
  check(!ec, "the server accepts a connection");
  (void)run([&](error_code& r) {  // may fail: the server closes after an error
    net::async_write(stream, net::buffer(bytes), [&](error_code e, std::size_t) { r = e; });
  });
  if (half_close) stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  std::string got;
  char buf[4096];
  for (;;) {
    std::size_t n = 0;
    ec = run([&](error_code& r) {
      stream.async_read_some(net::buffer(buf), [&](error_code e, std::size_t k) {
        r = e;
        n = k;
      });
    });
    got.append(buf, n);
    if (ec == net::error::eof || ec == net::error::connection_reset) return got;
    check(ec != boost::beast::error::timeout, "the server answers or closes within 5 s");
    if (ec) std::fprintf(stderr, "read: %s\n", ec.message().c_str());
    check(!ec, "reading the server's answer");
  }
}

// What the server's parser sees in `bytes` (same limits): the methods of the requests whose
// header was read, in order, and how many requests were complete.
struct Requests {
  std::vector<http::verb> methods;
  std::size_t complete = 0;
};

Requests requests_in(const std::string& bytes) {
  Requests r;
  std::size_t pos = 0;
  for (;;) {
    http::request_parser<http::string_body> p;
    p.body_limit(kMaxBody);
    p.header_limit(HttpServerOptions::kMaxHeaderBytes);
    p.eager(true);
    error_code ec;
    while (!ec && !p.is_done() && pos < bytes.size())
      pos += p.put(net::buffer(bytes.data() + pos, bytes.size() - pos), ec);
    if (p.is_header_done()) r.methods.push_back(p.get().method());
    if (!p.is_done()) return r;
    ++r.complete;
    if (!p.get().keep_alive()) return r;  // the server reads no further
  }
}

const std::set<unsigned>& known_statuses() {
  static const std::set<unsigned> s = {200, 400, 401, 404, 405, 413, 431, 500};
  return s;
}

// Checks `got` as the responses to `req`; returns how many final responses it holds.
std::size_t check_responses(const std::string& got, const Requests& req) {
  std::size_t pos = 0, finals = 0;
  while (pos < got.size()) {
    http::response_parser<http::string_body> p;
    p.body_limit(boost::none);
    p.eager(true);
    const bool head = finals < req.methods.size() && req.methods[finals] == http::verb::head;
    p.skip(head);  // a response to HEAD has no content, whatever its headers say
    error_code ec;
    while (!p.is_done() && pos < got.size()) {
      const std::size_t n = p.put(net::buffer(got.data() + pos, got.size() - pos), ec);
      pos += n;
      if (ec == http::error::need_more && n == 0) break;  // cut short: the end of `got`
      check(!ec || ec == http::error::need_more, "the server's bytes parse as HTTP responses");
    }
    if (!p.is_done()) p.put_eof(ec);  // a body that ends with the connection (HTTP/1.0)
    if (!p.is_done()) return finals;   // cut short, which a client that left may get
    const auto& res = p.get();
    if (res.result_int() == 100) continue;  // 100 Continue: the same request's interim answer
    ++finals;
    check(known_statuses().count(res.result_int()) == 1, "a known status");
    if (res.result_int() >= 400 && !head) {
      const auto j = nlohmann::json::parse(res.body(), nullptr, false);
      check(!j.is_discarded() && j.contains("error") && j["error"].contains("message"),
            "an error response is OpenAI error JSON");
    }
    if (!res.keep_alive())
      check(pos == got.size(), "nothing follows a response with Connection: close");
  }
  return finals;
}

void http_connection(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const Requests req = requests_in(bytes);
  const std::size_t finals = check_responses(exchange(bytes, true), req);
  check(finals <= req.complete + 1, "at most one response per request (+1 for a bad one)");

  const std::string health = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string got = exchange(health, false);  // "close": the server ends the connection
  check(check_responses(got, requests_in(health)) == 1 && got.rfind("HTTP/1.1 200", 0) == 0,
        "the server still answers GET /health on a new connection");
}

}  // namespace

Target http_connection_target() {
  return {"http_connection", "the bytes a client sends on one HTTP connection", http_connection};
}

}  // namespace tessera::fuzz
