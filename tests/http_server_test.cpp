// The HTTP server: routing, keep-alive, errors as OpenAI JSON, API keys, SSE streams.
#include "http_test_util.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

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
  EXPECT_EQ(res[http::field::allow], "GET, POST, HEAD");
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

// HEAD gets GET's answer without its content (RFC 9110 9.3.2), errors included; a body there
// would be read as the next response by a client keeping the connection.
TEST(HttpServer, HeadIsAnsweredLikeGetWithoutContent) {
  Running r;
  echo_routes(r.server);
  r.server.route("POST", "/post-only", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->respond(200, "application/json", "{}");
  });
  r.start();
  Client c(r.server.port());
  auto head = [&](const std::string& target) {
    EXPECT_FALSE(c.send("HEAD", target));
    http::response_parser<http::string_body> p;
    p.skip(true);  // what a client does for HEAD: the headers only
    auto ec = c.run([&](auto done) { http::async_read(c.stream, c.buf, p, done); });
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(c.buf.size(), 0u) << "bytes after the headers of the response to HEAD " << target;
    return p.release();
  };
  Response res = head("/echo?h=1");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["X-Reply"], "yes");  // GET's handler answered
  const auto echoed = nlohmann::json{{"method", "HEAD"}, {"path", "/echo"}, {"target", "/echo?h=1"},
                                     {"body", ""}, {"x_test", ""}};
  EXPECT_EQ(res[http::field::content_length], std::to_string(echoed.dump().size()));
  res = head("/post-only");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[http::field::allow], "POST");
  EXPECT_NE(res[http::field::content_length], "0");  // the error's length, not its bytes
  EXPECT_EQ(head("/nowhere").result_int(), 404);
  res = c.request("GET", "/echo?after=head");  // the connection stayed in step
  EXPECT_EQ(nlohmann::json::parse(res.body())["target"], "/echo?after=head");
}

// A handler that starts a stream (or not) and hands its writer to the test.
}  // namespace
}  // namespace tessera
