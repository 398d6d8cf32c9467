// HTTP connections: disconnects noticed, a slow client not stalling others, idle timeout,
// binding, stop and signals.
#include "http_test_util.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

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
  r->server.stop();
  if (!r->returned_within(3000)) {
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
  static std::atomic<bool> called{false};
  auto r = std::make_unique<Running>();
  r->server.stop_on_signals([] { called = true; });
  r->start();
  std::raise(SIGTERM);
  if (!r->returned_within(3000)) {
    r.release();
    FAIL() << "SIGTERM did not stop the server";
  }
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace tessera
