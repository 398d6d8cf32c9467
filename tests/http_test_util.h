// Shared by the HTTP server tests: a Beast client with a timeout on every operation (so a
// bug fails instead of hanging), a running server on its own threads, and echo routes.
#pragma once
#include "launcher/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace tessera {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Response = http::response<http::string_body>;
using Fields = std::vector<std::pair<std::string, std::string>>;

inline double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

inline HttpServerOptions test_options(int threads = 2) {
  HttpServerOptions o;
  o.port = 0;  // any free port
  o.threads = threads;
  return o;
}

// A server with its run() on a thread; routes go in before start().
struct Running {
  explicit Running(HttpServerOptions o = test_options()) : server(std::move(o)) {}
  void start() { thread = std::thread([this, r = returned] { server.run(); r->set_value(); }); }
  // Whether run() returned within `ms`; when not, the caller leaks this rather than hang.
  bool returned_within(int ms) {
    auto status = returned->get_future().wait_for(std::chrono::milliseconds(ms));
    if (status == std::future_status::ready) thread.join();
    return status == std::future_status::ready;
  }
  ~Running() {
    server.stop();
    if (thread.joinable()) thread.join();
  }
  HttpServer server;
  std::shared_ptr<std::promise<void>> returned = std::make_shared<std::promise<void>>();
  std::thread thread;
};

// Threads a handler starts (on the io threads); joined before the server goes.
struct Workers {
  std::mutex m;
  std::vector<std::thread> threads;
  template <class F> void spawn(F f) {
    std::lock_guard lock(m);
    threads.emplace_back(std::move(f));
  }
  ~Workers() { for (auto& t : threads) t.join(); }
};

class Client {
 public:
  explicit Client(int port) {
    auto ec = run([&](auto done) {
      stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), done);
    });
    EXPECT_FALSE(ec) << ec.message();
  }
  // Runs one async operation to completion (or its timeout) on this client's io_context.
  template <class Start> error_code run(Start start, int timeout_ms = 5000) {
    error_code result;
    stream.expires_after(std::chrono::milliseconds(timeout_ms));
    start([&](error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }
  error_code write_raw(const std::string& s) {
    return run([&](auto done) { net::async_write(stream, net::buffer(s), done); });
  }
  error_code send(const std::string& method, const std::string& target,
                  const std::string& body = "", const Fields& headers = {}) {
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, "localhost");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    return run([&](auto done) { http::async_write(stream, req, done); });
  }
  Response read() {
    Response res;
    auto ec = run([&](auto done) { http::async_read(stream, buf, res, done); });
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }
  Response request(const std::string& method, const std::string& target,
                   const std::string& body = "", const Fields& headers = {}) {
    auto ec = send(method, target, body, headers);
    EXPECT_FALSE(ec) << ec.message();
    return read();
  }
  // True when the server closes the connection (EOF) within the timeout.
  bool closed_by_server(int timeout_ms) {
    char b[256];
    error_code ec;
    do {
      ec = run([&](auto done) { stream.async_read_some(net::buffer(b), done); }, timeout_ms);
    } while (!ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buf;
};

inline nlohmann::json error_of(const Response& r) {
  EXPECT_EQ(r[http::field::content_type], "application/json");
  auto j = nlohmann::json::parse(r.body());
  EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("type") &&
              j["error"].contains("param") && j["error"].contains("code"))
      << r.body();
  return j["error"];
}

inline void echo_routes(HttpServer& s) {
  auto echo = [](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    nlohmann::json j = {{"method", req.method}, {"path", req.path}, {"target", req.target},
                        {"body", req.body}, {"x_test", req.header("x-test")}};
    w->respond(200, "application/json", j.dump(), {{"X-Reply", "yes"}});
  };
  s.route("GET", "/echo", echo);
  s.route("POST", "/echo", echo);
  s.route("GET", "/v1/models", echo);
  s.route("GET", "/v1/models/*", echo);
}

}  // namespace
}  // namespace tessera
