// The HTTP server: routing, keep-alive, errors as OpenAI JSON, API keys, SSE streams,
// disconnects, a slow client not stalling others, binding, stop. The client side is a Beast
// client on its own io_context with a timeout on every operation, so a bug fails, not hangs.
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

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

HttpServerOptions test_options(int threads = 2) {
  HttpServerOptions o;
  o.port = 0;  // any free port
  o.threads = threads;
  return o;
}

// A server with its run() on a thread; routes go in before start().
struct Running {
  explicit Running(HttpServerOptions o = test_options()) : server(std::move(o)) {}
  void start() { thread = std::thread([this] { server.run(); }); }
  ~Running() {
    server.stop();
    if (thread.joinable()) thread.join();
  }
  HttpServer server;
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

nlohmann::json error_of(const Response& r) {
  EXPECT_EQ(r[http::field::content_type], "application/json");
  auto j = nlohmann::json::parse(r.body());
  EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("type") &&
              j["error"].contains("param") && j["error"].contains("code"))
      << r.body();
  return j["error"];
}

void echo_routes(HttpServer& s) {
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

TEST(HttpServer, GetAndPostReachTheHandler) {
  Running r;
  echo_routes(r.server);
  r.start();
  Client c(r.server.port());
  auto res = c.request("GET", "/echo?x=1", "", {{"X-Test", "hello"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["X-Reply"], "yes");
  auto j = nlohmann::json::parse(res.body());
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/echo");
  EXPECT_EQ(j["target"], "/echo?x=1");
  EXPECT_EQ(j["x_test"], "hello");
  res = c.request("POST", "/echo", R"({"a":1})", {{"Content-Type", "application/json"}});
  j = nlohmann::json::parse(res.body());
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["body"], R"({"a":1})");
  j = nlohmann::json::parse(c.request("GET", "/v1/models/some-model").body());
  EXPECT_EQ(j["path"], "/v1/models/some-model");  // prefix route
}

TEST(HttpServer, KeepAliveServesTwoRequestsOnOneConnectionAndHonoursClose) {
  Running r;
  echo_routes(r.server);
  r.start();
  Client c(r.server.port());
  auto first = c.request("GET", "/echo");
  EXPECT_TRUE(first.keep_alive());
  auto second = c.request("POST", "/echo", "again");
  EXPECT_EQ(nlohmann::json::parse(second.body())["body"], "again");
  ASSERT_FALSE(c.write_raw("GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"  // pipelined
                           "GET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(nlohmann::json::parse(c.read().body())["target"], "/echo?n=1");
  EXPECT_EQ(nlohmann::json::parse(c.read().body())["target"], "/echo?n=2");
  auto last = c.request("GET", "/echo", "", {{"Connection", "close"}});
  EXPECT_EQ(last.result_int(), 200);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(c.closed_by_server(2000));
}

TEST(HttpServer, ErrorsAreOpenAiJson) {
  auto o = test_options();
  o.max_body_bytes = 1024;
  o.api_key = "sk-test";
  Running r(o);
  echo_routes(r.server);
  r.start();
  Client c(r.server.port());
  auto res = c.request("GET", "/nowhere");
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_NE(error_of(res)["message"].get<std::string>().find("/nowhere"), std::string::npos);
  res = c.request("DELETE", "/echo");  // same connection: errors keep it alive
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(error_of(res)["type"], "invalid_request_error");
  EXPECT_EQ(res[http::field::allow], "GET, POST");
  res = c.request("GET", "/v1/models");
  EXPECT_EQ(res.result_int(), 401);
  EXPECT_EQ(error_of(res)["code"], "invalid_api_key");
  res = c.request("GET", "/v1/models", "", {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(res.result_int(), 401);
  res = c.request("GET", "/v1/models", "", {{"Authorization", "Bearer sk-test"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(c.request("GET", "/echo").result_int(), 200);  // outside /v1/: no key needed
  EXPECT_EQ(c.request("POST", "/echo", std::string(1024, 'x')).result_int(), 200);
  res = c.request("POST", "/echo", std::string(1025, 'x'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_EQ(error_of(res)["param"], nullptr);
  EXPECT_TRUE(c.closed_by_server(3000));

  Client bad(r.server.port());
  ASSERT_FALSE(bad.write_raw("this is not http\r\n\r\n"));
  res = bad.read();
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(error_of(res)["type"], "invalid_request_error");
}

TEST(HttpServer, SseStreamArrivesInOrderThenKeepAlive) {
  Running r;
  Workers workers;
  std::atomic<bool> ended{false};
  echo_routes(r.server);
  r.server.route("POST", "/stream", [&](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    workers.spawn([w, &ended] {  // streams 5 chunks from another thread
      w->start_stream();
      for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(w->send("data: " + std::to_string(i) + "\n\n"));
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
      }
      ended = true;
      w->end_stream();
    });
  });
  r.start();
  Client c(r.server.port());
  ASSERT_FALSE(c.send("POST", "/stream", "{}"));
  http::response_parser<http::string_body> p;
  std::vector<std::string> chunks;
  std::string part;
  bool first_before_end = false;
  auto on_chunk = [&](std::uint64_t remain, beast::string_view body, error_code&) {
    if (chunks.empty()) first_before_end = !ended;  // sent as they come, not at the end
    part.append(body.data(), body.size());
    if (remain == body.size()) chunks.push_back(std::exchange(part, ""));
    return body.size();
  };
  p.on_chunk_body(on_chunk);  // (kept by reference)
  auto ec = c.run([&](auto done) { http::async_read(c.stream, c.buf, p, done); });
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_done());  // the terminating chunk was read
  EXPECT_TRUE(p.get().chunked());
  EXPECT_EQ(p.get()[http::field::content_type], "text/event-stream");
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_TRUE(first_before_end);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(chunks[i], "data: " + std::to_string(i) + "\n\n");
  EXPECT_EQ(c.request("GET", "/echo").result_int(), 200);  // same connection
}

// A handler that starts a stream (or not) and hands its writer to the test.
struct Held {
  std::promise<std::shared_ptr<ResponseWriter>> writer;
  std::promise<Clock::time_point> disconnected;
};

void hold_route(HttpServer& s, Held& held, bool stream) {
  s.route("POST", "/hold", [&held, stream](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->on_disconnect([&held] { held.disconnected.set_value(Clock::now()); });
    if (stream) {
      w->start_stream();
      w->send("data: first\n\n");
    }
    held.writer.set_value(w);
  });
}

TEST(HttpServer, DisconnectMidStreamIsNoticed) {
  Held held;  // outlives the server: its on_disconnect may run as the server goes
  Running r;
  hold_route(r.server, held, true);
  r.start();
  auto c = std::make_unique<Client>(r.server.port());
  ASSERT_FALSE(c->send("POST", "/hold"));
  http::response_parser<http::string_body> p;
  bool got_chunk = false;
  auto on_chunk = [&](std::uint64_t, beast::string_view body, error_code&) {
    got_chunk = true;
    return body.size();
  };
  p.on_chunk_body(on_chunk);
  while (!got_chunk) {
    auto ec = c->run([&](auto done) { http::async_read_some(c->stream, c->buf, p, done); });
    ASSERT_FALSE(ec) << ec.message();
  }
  auto writer = held.writer.get_future().get();
  EXPECT_FALSE(writer->client_gone());
  auto closed_at = Clock::now();
  c.reset();  // the client goes away
  auto fut = held.disconnected.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(1)), std::future_status::ready);
  EXPECT_LT(std::chrono::duration<double>(fut.get() - closed_at).count(), 1.0);
  EXPECT_TRUE(writer->client_gone());
  EXPECT_FALSE(writer->send("data: late\n\n"));
  writer->end_stream();  // a no-op, not a crash
}

TEST(HttpServer, DisconnectBeforeTheHandlerRespondedIsNoticed) {
  Held held;  // outlives the server: its on_disconnect may run as the server goes
  Running r;
  hold_route(r.server, held, false);
  r.start();
  auto c = std::make_unique<Client>(r.server.port());
  ASSERT_FALSE(c->send("POST", "/hold"));
  auto writer = held.writer.get_future().get();
  c.reset();
  auto fut = held.disconnected.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(1)), std::future_status::ready);
  EXPECT_TRUE(writer->client_gone());
  writer->respond(200, "text/plain", "too late");  // a no-op
}

TEST(HttpServer, HandlerThatDropsItsWriterOrThrowsGets500) {
  Running r;
  r.server.route("GET", "/drop", [](const HttpRequest&, std::shared_ptr<ResponseWriter>) {});
  r.server.route("GET", "/throw", [](const HttpRequest&, std::shared_ptr<ResponseWriter>) {
    throw std::runtime_error("boom");
  });
  r.start();
  Client c(r.server.port());
  auto res = c.request("GET", "/drop");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(error_of(res)["type"], "server_error");
  res = c.request("GET", "/throw");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(error_of(res)["message"], "boom");
}

TEST(HttpServer, SlowReaderDoesNotDelayOtherClients) {
  Running r(test_options(1));  // one io thread: any blocking write would stall everybody
  Workers workers;
  echo_routes(r.server);
  constexpr int kChunks = 64, kChunkBytes = 256 * 1024;  // 16 MiB
  std::promise<void> queued;
  r.server.route("POST", "/big", [&](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    workers.spawn([w, &queued] {
      w->start_stream();
      for (int i = 0; i < kChunks; ++i) w->send(std::string(kChunkBytes, 'a' + i % 26));
      w->end_stream();
      queued.set_value();
    });
  });
  r.start();
  Client slow(r.server.port());
  slow.stream.socket().set_option(net::socket_base::receive_buffer_size(64 * 1024));
  ASSERT_FALSE(slow.send("POST", "/big"));
  queued.get_future().wait();
  auto t0 = Clock::now();
  while (ms_since(t0) < 3000) {  // the slow client reads nothing for 3 s
    Client fast(r.server.port());
    auto t = Clock::now();
    EXPECT_EQ(fast.request("GET", "/echo").result_int(), 200);
    EXPECT_LT(ms_since(t), 500.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  http::response_parser<http::string_body> p;  // then it reads everything, intact
  p.body_limit(64u << 20);
  auto ec = slow.run([&](auto done) { http::async_read(slow.stream, slow.buf, p, done); }, 20000);
  ASSERT_FALSE(ec) << ec.message();
  const std::string& body = p.get().body();
  ASSERT_EQ(body.size(), std::size_t(kChunks) * kChunkBytes);
  for (int i = 0; i < kChunks; ++i) ASSERT_EQ(body[std::size_t(i) * kChunkBytes], 'a' + i % 26);
}

TEST(HttpServer, IdleConnectionIsClosed) {
  auto o = test_options();
  o.idle_timeout_ms = 200;
  Running r(o);
  echo_routes(r.server);
  r.start();
  Client c(r.server.port());
  EXPECT_EQ(c.request("GET", "/echo").result_int(), 200);
  auto t = Clock::now();
  EXPECT_TRUE(c.closed_by_server(3000));
  EXPECT_LT(ms_since(t), 2000.0);
}

TEST(HttpServer, PortZeroPicksAPortAndABusyPortThrows) {
  HttpServer a(test_options());
  EXPECT_GT(a.port(), 0);
  auto o = test_options();
  o.port = a.port();
  try {
    HttpServer b(o);
    FAIL() << "binding a port in use did not throw";
  } catch (const UserError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("127.0.0.1:" + std::to_string(a.port())), std::string::npos) << msg;
    EXPECT_NE(msg.find("already in use"), std::string::npos) << msg;
  }
}

TEST(HttpServer, StopEndsRunWithConnectionsOpen) {
  Held held;
  auto r = std::make_unique<Running>();
  hold_route(r->server, held, true);
  echo_routes(r->server);
  r->start();
  Client idle(r->server.port());
  EXPECT_EQ(idle.request("GET", "/echo").result_int(), 200);
  Client streaming(r->server.port());
  ASSERT_FALSE(streaming.send("POST", "/hold"));
  auto writer = held.writer.get_future().get();
  auto done = std::async(std::launch::async, [&] { r->thread.join(); });
  r->server.stop();
  if (done.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
    r.release();  // leak it rather than destroy a running server
    FAIL() << "run() did not return after stop()";
  }
  EXPECT_EQ(held.disconnected.get_future().wait_for(std::chrono::seconds(1)),
            std::future_status::ready);
  EXPECT_FALSE(writer->send("data: after stop\n\n"));
  r.reset();
  EXPECT_FALSE(writer->send("data: after the server is gone\n\n"));
}

TEST(HttpServer, SignalStopsTheServer) {
  Running r;
  std::atomic<bool> called{false};
  r.server.stop_on_signals([&] { called = true; });
  auto done = std::async(std::launch::async, [&] { r.server.run(); });
  std::raise(SIGTERM);
  ASSERT_EQ(done.wait_for(std::chrono::seconds(3)), std::future_status::ready);
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace tessera
