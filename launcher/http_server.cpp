// The HTTP server: listening socket, accept loop, routes, io threads, stop and signals, and
// the ResponseWriter handlers get. One connection's life is in http_connection.cpp.
#include "launcher/http_server.h"

#include <csignal>
#include <cstdio>
#include <exception>
#include <thread>

#include <nlohmann/json.hpp>

#include "launcher/http_connection.h"
#include "runtime/error.h"

namespace tessera {

std::string HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string openai_error_json(const std::string& message, const std::string& type,
                              const std::string& param, const std::string& code) {
  nlohmann::json err = {{"message", message},
                        {"type", type},
                        {"param", param.empty() ? nlohmann::json() : nlohmann::json(param)},
                        {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}};
  return nlohmann::json{{"error", err}}.dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

namespace http_detail {

namespace {
tcp::endpoint resolve(const std::string& host, int port) {
  require(port >= 0 && port <= 65535, "invalid port " + std::to_string(port));
  error_code ec;
  auto addr = net::ip::make_address(host, ec);
  if (!ec) return {addr, static_cast<unsigned short>(port)};
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  require(!ec && !results.empty(),
          "cannot listen on " + host + ":" + std::to_string(port) + ": unknown host");
  return results.begin()->endpoint();
}
}  // namespace

ServerCore::ServerCore(HttpServerOptions o) : opt(std::move(o)) {
  require(opt.threads >= 1, "the HTTP server needs at least one thread");
  require(opt.idle_timeout_ms > 0, "the HTTP idle timeout must be positive");
  tcp::endpoint ep = resolve(opt.host, opt.port);
  std::string where = opt.host + ":" + std::to_string(opt.port);
  try {
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(net::socket_base::max_listen_connections);
    bound_port = acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    std::string why = e.code() == net::error::address_in_use ? "the port is already in use"
                                                             : e.code().message();
    throw UserError("cannot listen on " + where + ": " + why);
  }
  accept();
}

void ServerCore::accept() {
  auto strand = net::make_strand(ioc);
  acceptor.async_accept(strand, [this, strand](error_code ec, tcp::socket sock) {
    if (stopping || ec == net::error::operation_aborted) return;
    if (ec) {  // out of file descriptors and the like: try again shortly, do not spin
      std::fprintf(stderr, "http: accept failed: %s\n", ec.message().c_str());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](error_code e) {
        if (!e && !stopping) accept();
      });
      return;
    }
    error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    auto conn = std::make_shared<Connection>(*this, strand, std::move(sock));
    add(conn);
    conn->start();
    accept();
  });
}

void ServerCore::add(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(conns_m);
  conns[c.get()] = c;
}

void ServerCore::remove(Connection* c) {
  std::lock_guard lock(conns_m);
  conns.erase(c);
}

const std::map<std::string, HttpHandler>* ServerCore::find(const std::string& path) const {
  if (auto it = routes.find(path); it != routes.end()) return &it->second;
  const std::map<std::string, HttpHandler>* best = nullptr;
  std::size_t best_len = 0;
  for (const auto& [prefix, methods] : prefix_routes) {
    if (path.rfind(prefix, 0) == 0 && prefix.size() >= best_len) {
      best = &methods;
      best_len = prefix.size();
    }
  }
  return best;
}

void ServerCore::stop() {
  if (stopping.exchange(true)) return;
  net::post(ioc, [this] {
    error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    if (signals) signals->cancel(ignored);
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard lock(conns_m);
      for (auto& [_, weak] : conns)
        if (auto c = weak.lock()) open.push_back(std::move(c));
    }
    for (auto& c : open) {
      auto ex = c->executor();  // before c moves into the job
      net::post(ex, [c = std::move(c)] { c->close(); });
    }
  });
}

void ServerCore::run() {
  auto loop = [this] {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {  // handlers catch their own; this is a last resort
        std::fprintf(stderr, "http: io thread caught: %s\n", e.what());
      }
    }
  };
  std::vector<std::thread> extra;
  for (int i = 1; i < opt.threads; ++i) extra.emplace_back(loop);
  loop();
  for (auto& t : extra) t.join();
}

// ---- Exchange: the ResponseWriter of one request ----

bool Exchange::post(std::function<void(Connection&)> f) {
  std::lock_guard gate_lock(gate_->m);
  if (gate_->closed) return false;
  auto conn = conn_.lock();
  if (!conn) return false;
  // The connection travels inside the posted job: no reference is left here whose release
  // could destroy the connection on this thread while locks are held.
  auto strand = conn->executor();
  net::post(strand, [c = std::move(conn), f = std::move(f)] { f(*c); });
  return true;
}

Exchange::~Exchange() {
  if (phase_ != Phase::ended) post([id = id_](Connection& c) { c.do_abandon(id); });
}

void Exchange::respond(int status, const std::string& content_type, std::string body,
                       Headers extra_headers) {
  std::function<void()> drop;
  std::lock_guard lock(m_);
  if (phase_ != Phase::none) return;
  phase_ = Phase::ended;
  drop.swap(on_disconnect_);  // may hold this writer: break the cycle
  post([id = id_, status, ct = content_type, b = std::move(body),
        h = std::move(extra_headers)](Connection& c) mutable {
    c.do_respond(id, status, ct, std::move(b), h);
  });
}

void Exchange::start_stream(int status) {
  std::lock_guard lock(m_);
  if (phase_ != Phase::none) return;
  phase_ = Phase::streaming;
  post([id = id_, status](Connection& c) { c.do_start_stream(id, status); });
}

bool Exchange::send(std::string data) {
  if (gone_) return false;
  std::lock_guard lock(m_);
  if (phase_ != Phase::streaming) return false;
  return post([id = id_, d = std::move(data)](Connection& c) mutable {
    c.do_chunk(id, std::move(d));
  });
}

void Exchange::end_stream() {
  std::function<void()> drop;
  std::lock_guard lock(m_);
  if (phase_ != Phase::streaming) return;
  phase_ = Phase::ended;
  drop.swap(on_disconnect_);
  post([id = id_](Connection& c) { c.do_end_stream(id); });
}

void Exchange::on_disconnect(std::function<void()> fn) {
  {
    std::lock_guard lock(m_);
    if (disconnect_fired_ || phase_ == Phase::ended) return;
    if (!gone_) {
      on_disconnect_ = std::move(fn);
      return;
    }
    disconnect_fired_ = true;
  }
  if (fn) fn();  // the client already left
}

void Exchange::notify_gone() {
  std::function<void()> fn;
  {
    std::lock_guard lock(m_);
    gone_ = true;
    if (phase_ != Phase::ended && !disconnect_fired_ && on_disconnect_) {
      disconnect_fired_ = true;
      fn.swap(on_disconnect_);
    }
  }
  if (fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "http: on_disconnect threw: %s\n", e.what());
    }
  }
}

}  // namespace http_detail

HttpServer::HttpServer(HttpServerOptions opt)
    : core_(std::make_shared<http_detail::ServerCore>(std::move(opt))) {}

HttpServer::~HttpServer() {
  core_->stop();
  {
    std::lock_guard lock(core_->gate->m);
    core_->gate->closed = true;
  }
  // Destroying the io_context destroys the queued handlers and with them the connections;
  // their pending requests see on_disconnect.
  core_.reset();
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler) {
  if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0)
    core_->prefix_routes[path.substr(0, path.size() - 1)][method] = std::move(handler);
  else
    core_->routes[path][method] = std::move(handler);
}

int HttpServer::port() const { return core_->bound_port; }

void HttpServer::run() { core_->run(); }

void HttpServer::stop() { core_->stop(); }

void HttpServer::stop_on_signals(std::function<void()> on_signal) {
  auto* core = core_.get();
  core->on_signal = std::move(on_signal);
  core->signals.emplace(core->ioc, SIGINT, SIGTERM);
  core->signals->async_wait([core](http_detail::error_code ec, int) {
    if (ec) return;
    if (core->on_signal) core->on_signal();
    core->stop();
  });
}

}  // namespace tessera
