// One HTTP/1.1 connection: read a request (idle timeout), dispatch it, write the response or
// the SSE stream from a queue, then read the next request (keep-alive). While a request is
// being answered a read stays outstanding, so a client closing its socket is noticed at once.
#include "launcher/http_connection.h"

#include <cctype>
#include <exception>
#include <sstream>

namespace tessera::http_detail {

namespace {
constexpr std::size_t kMaxBuffered = 1 << 20;  // pipelined bytes kept while answering
constexpr int kDrainMs = 2000;                 // lingering close: read and discard this long

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

Connection::Connection(ServerCore& core, Strand strand, tcp::socket sock)
    : core_(core), strand_(strand), sock_(std::move(sock)), timer_(strand) {}

Connection::~Connection() {
  notify_gone();
  core_.remove(this);
}

void Connection::start() {
  net::post(strand_, [self = shared_from_this()] { self->read_request(); });
}

void Connection::notify_gone() {
  if (auto ex = current_.lock()) ex->notify_gone();
  current_.reset();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  auto keep = std::move(hold_);
  disarm_timer();
  error_code ignored;
  sock_.shutdown(tcp::socket::shutdown_both, ignored);
  sock_.close(ignored);
  notify_gone();
}

void Connection::arm_timer(int ms) {
  uint64_t gen = ++timer_gen_;
  timer_.expires_after(std::chrono::milliseconds(ms));
  timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (ec || gen != self->timer_gen_) return;
    self->close();  // idle between requests, or the lingering close is over
  });
}

void Connection::disarm_timer() {
  ++timer_gen_;
  timer_.cancel();
}

// ---- reading requests ----

void Connection::read_request() {
  if (closed_ || closing_) return;
  parser_.emplace();
  parser_->body_limit(static_cast<std::uint64_t>(core_.opt.max_body_bytes));
  parser_->header_limit(HttpServerOptions::kMaxHeaderBytes);
  sent_continue_ = false;
  arm_timer(core_.opt.idle_timeout_ms);
  read_some();
}

void Connection::read_some() {
  reading_ = true;
  http::async_read_some(sock_, buf_, *parser_,
                        [self = shared_from_this()](error_code ec, std::size_t) {
                          self->on_read(ec);
                        });
}

void Connection::on_read(error_code ec) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    disarm_timer();
    bool parse_error = ec.category() == http::make_error_code(http::error::bad_method).category();
    if (ec == http::error::body_limit) {
      send_error(413, "request body is larger than " + std::to_string(core_.opt.max_body_bytes) +
                          " bytes", "invalid_request_error", true);
    } else if (ec == http::error::header_limit) {
      send_error(431, "request header fields are too large", "invalid_request_error", true);
    } else if (parse_error && ec != http::error::end_of_stream &&
               ec != http::error::partial_message) {
      send_error(400, "malformed HTTP request: " + ec.message(), "invalid_request_error", true);
    } else {
      close();  // the client closed, between requests or mid-request
    }
    return;
  }
  if (!parser_->is_done()) {
    arm_timer(core_.opt.idle_timeout_ms);  // progress: the idle clock restarts
    if (parser_->is_header_done() && !sent_continue_ &&
        boost::beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      sent_continue_ = true;
      enqueue({Out::raw, "HTTP/1.1 100 Continue\r\n\r\n", false});
    }
    read_some();
    return;
  }
  disarm_timer();
  dispatch();
}

void Connection::dispatch() {
  auto& msg = parser_->get();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.path = req.target.substr(0, req.target.find('?'));
  req.version = static_cast<int>(msg.version());
  for (const auto& f : msg) {
    std::string name = lower(std::string(f.name_string()));
    auto [it, fresh] = req.headers.emplace(name, std::string(f.value()));
    if (!fresh) it->second += ", " + std::string(f.value());
  }
  req.body = std::move(msg.body());
  version_ = msg.version();
  keep_alive_ = msg.keep_alive();
  head_ = msg.method() == http::verb::head;
  parser_.reset();

  busy_ = true;
  ++req_id_;
  resp_ = Resp::none;
  watch();  // notice a client that leaves while we answer

  const std::string& key = core_.opt.api_key;
  if (!key.empty() && req.path.rfind("/v1/", 0) == 0) {
    std::string auth = req.header("authorization");
    bool ok = auth.size() == key.size() + 7 &&
              boost::beast::iequals(auth.substr(0, 7), "bearer ") &&
              auth.compare(7, std::string::npos, key) == 0;
    if (!ok) {
      send_error(401,
                 auth.empty() ? "missing API key: send the header 'Authorization: Bearer KEY'"
                              : "incorrect API key provided",
                 "invalid_request_error", false, {{"WWW-Authenticate", "Bearer"}},
                 "invalid_api_key");
      return;
    }
  }
  const auto* methods = core_.find(req.path);
  if (!methods) {
    send_error(404, "not found: " + req.path, "invalid_request_error", false);
    return;
  }
  auto h = methods->find(req.method);
  if (h == methods->end() && head_) h = methods->find("GET");  // HEAD: GET's answer, no content
  if (h == methods->end()) {
    std::string allow;
    for (const auto& [m, _] : *methods) allow += (allow.empty() ? "" : ", ") + m;
    if (methods->count("GET") && !methods->count("HEAD")) allow += ", HEAD";
    send_error(405, "method " + req.method + " not allowed for " + req.path,
               "invalid_request_error", false, {{"Allow", allow}});
    return;
  }
  auto ex = std::make_shared<Exchange>(weak_from_this(), core_.gate, req_id_);
  current_ = ex;
  try {
    h->second(req, ex);
  } catch (const std::exception& e) {
    ex->respond(500, "application/json", openai_error_json(e.what(), "server_error"));
  } catch (...) {
    ex->respond(500, "application/json", openai_error_json("internal error", "server_error"));
  }
}

void Connection::send_error(int status, const std::string& message, const std::string& type,
                            bool close_after, const Headers& extra, const std::string& code) {
  if (!busy_) {  // an error found while reading: this is the request being answered now
    busy_ = true;
    ++req_id_;
    resp_ = Resp::none;
    head_ = parser_ && parser_->is_header_done() && parser_->get().method() == http::verb::head;
  }
  if (close_after) keep_alive_ = false;
  do_respond(req_id_, status, "application/json", openai_error_json(message, type, "", code),
             extra);
}

// ---- watching the socket while answering, draining it while closing ----

void Connection::watch() {
  if (reading_ || closed_) return;
  if (closing_) {
    buf_.consume(buf_.size());
  } else if (buf_.size() >= kMaxBuffered) {
    hold_ = shared_from_this();  // no read keeps us alive now: the handler may answer late
    return;  // a pipelining client: enough buffered, stop reading until we answered
  }
  reading_ = true;
  sock_.async_read_some(buf_.prepare(4096),
                        [self = shared_from_this()](error_code ec, std::size_t n) {
                          self->on_watch(ec, n);
                        });
}

void Connection::on_watch(error_code ec, std::size_t n) {
  reading_ = false;
  buf_.commit(n);
  if (closed_) return;
  if (restart_reading_) {  // cancelled by on_response_done: read the next request now
    restart_reading_ = false;
    if (ec && ec != net::error::operation_aborted) close();
    else read_request();
  } else if (ec) {
    close();  // EOF or reset: the client is gone (or done, when closing)
  } else if (busy_ || closing_) {
    watch();
  } else {
    read_request();
  }
}

// ---- responses (posted by the Exchange) ----

void Connection::do_respond(uint64_t id, int status, const std::string& content_type,
                            std::string body, const Headers& extra) {
  if (id != req_id_ || closed_ || !busy_ || resp_ != Resp::none) return;
  resp_ = Resp::done;
  http::response<http::empty_body> res;
  res.version(version_);
  res.result(static_cast<unsigned>(status));
  res.set(http::field::server, "tessera");
  res.set(http::field::content_type, content_type);
  for (const auto& [name, value] : extra) {
    bool close = lower(value).find("close") != std::string::npos;
    if (boost::beast::iequals(name, "connection") && close) keep_alive_ = false;
    res.set(name, value);
  }
  res.content_length(body.size());
  res.keep_alive(keep_alive_);
  std::ostringstream os;
  os << res.base();
  std::string bytes = os.str();
  if (!head_) bytes += body;  // a response to HEAD has the headers of GET's, never content
  enqueue({Out::raw, std::move(bytes), true});
}

void Connection::do_start_stream(uint64_t id, int status) {
  if (id != req_id_ || closed_ || !busy_ || resp_ != Resp::none) return;
  resp_ = Resp::streaming;
  http::response<http::empty_body> res;
  res.version(version_);
  res.result(static_cast<unsigned>(status));
  res.set(http::field::server, "tessera");
  res.set(http::field::content_type, "text/event-stream");
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");
  if (version_ >= 11)
    res.chunked(true);
  else
    keep_alive_ = false;  // HTTP/1.0: the end of the stream is the end of the connection
  res.keep_alive(keep_alive_);
  std::ostringstream os;
  os << res.base();
  enqueue({Out::raw, os.str(), false});
}

void Connection::do_chunk(uint64_t id, std::string data) {
  if (id != req_id_ || closed_ || resp_ != Resp::streaming || data.empty() || head_) return;
  enqueue({version_ >= 11 ? Out::chunk : Out::raw, std::move(data), false});
}

void Connection::do_end_stream(uint64_t id) {
  if (id != req_id_ || closed_ || resp_ != Resp::streaming) return;
  resp_ = Resp::done;
  enqueue({version_ >= 11 && !head_ ? Out::last_chunk : Out::raw, "", true});
}

void Connection::do_abandon(uint64_t id) {
  if (id != req_id_ || closed_) return;
  if (resp_ == Resp::none) {
    do_respond(id, 500, "application/json",
               openai_error_json("the request handler did not respond", "server_error"), {});
  } else if (resp_ == Resp::streaming) {
    close();  // a truncated stream: the client must not take it for a complete one
  }
}

// ---- the write queue ----

void Connection::enqueue(Out o) {
  if (closed_) return;
  outq_.push_back(std::move(o));
  if (!writing_) write_next();
}

void Connection::write_next() {
  if (closed_ || outq_.empty()) return;
  writing_ = true;
  auto done = [self = shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); };
  Out& o = outq_.front();
  switch (o.kind) {
    case Out::raw: net::async_write(sock_, net::buffer(o.data), done); break;
    case Out::chunk: net::async_write(sock_, http::make_chunk(net::buffer(o.data)), done); break;
    case Out::last_chunk: net::async_write(sock_, http::make_chunk_last(), done); break;
  }
}

void Connection::on_write(error_code ec) {
  writing_ = false;
  if (closed_) return;
  if (ec) {
    close();
    return;
  }
  bool final = outq_.front().final;
  outq_.pop_front();
  if (final) on_response_done();
  write_next();
}

void Connection::on_response_done() {
  auto keep = std::move(hold_);
  busy_ = false;
  current_.reset();
  if (!keep_alive_) {
    graceful_close();
  } else if (reading_) {
    // The watch read may be sitting on the start of the next request: cancel it (no write is
    // pending now) and read the request from its completion, buffered bytes first.
    restart_reading_ = true;
    error_code ignored;
    sock_.cancel(ignored);
  } else {
    read_request();
  }
}

// Half-close and read until the client closes too, so that it reads our response rather
// than a reset caused by request bytes we never read.
void Connection::graceful_close() {
  closing_ = true;
  error_code ignored;
  sock_.shutdown(tcp::socket::shutdown_send, ignored);
  arm_timer(kDrainMs);
  watch();
}

}  // namespace tessera::http_detail
