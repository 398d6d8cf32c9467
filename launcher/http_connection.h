// Internals of the HTTP server (launcher/http_server.h): the shared server state, one
// connection, and the ResponseWriter a handler gets (an Exchange: one request/response).
//
// Threading: everything a Connection owns is touched only on its strand. An Exchange may be
// called from any thread; it posts to its connection's strand, under the server's Gate so that
// nothing is posted once the server (and its io_context) is going away.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "launcher/http_server.h"

namespace tessera::http_detail {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Strand = net::strand<net::io_context::executor_type>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Closed (under its mutex) before the io_context is destroyed: writers kept by handlers then
// post nothing and hold no connection.
struct Gate {
  std::mutex m;
  bool closed = false;
};

class Connection;

struct ServerCore {
  explicit ServerCore(HttpServerOptions o);
  void accept();
  void stop();
  void run();
  void add(const std::shared_ptr<Connection>& c);
  void remove(Connection* c);
  // The handlers for a path (exact, else the longest "/*" prefix route); null: none.
  const std::map<std::string, HttpHandler>* find(const std::string& path) const;

  // Declaration order is destruction order reversed: the io_context goes before the registry
  // and the routes (its queued handlers own connections), the acceptor before the io_context.
  HttpServerOptions opt;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  std::map<std::string, std::map<std::string, HttpHandler>> routes, prefix_routes;
  std::mutex conns_m;
  std::map<Connection*, std::weak_ptr<Connection>> conns;
  int bound_port = 0;
  std::atomic<bool> stopping{false};
  std::function<void()> on_signal;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  net::steady_timer accept_retry{ioc};
  std::optional<net::signal_set> signals;
};

class Exchange;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore& core, Strand strand, tcp::socket sock);
  ~Connection();
  void start();  // any thread
  void close();  // on the strand
  Strand executor() { return strand_; }

  // Posted by the Exchange of request `id` (stale ids are ignored).
  void do_respond(uint64_t id, int status, const std::string& content_type, std::string body,
                  const Headers& extra);
  void do_start_stream(uint64_t id, int status);
  void do_chunk(uint64_t id, std::string data);
  void do_end_stream(uint64_t id);
  void do_abandon(uint64_t id);  // the handler dropped its writer without finishing

 private:
  struct Out {
    enum Kind { raw, chunk, last_chunk } kind;
    std::string data;
    bool final;  // the last piece of a response
  };
  void read_request();
  void read_some();
  void on_read(error_code ec);
  void dispatch();
  void send_error(int status, const std::string& message, const std::string& type,
                  bool close_after, const Headers& extra = {}, const std::string& code = "");
  void watch();  // keeps a read going while answering (client gone?) or draining (closing)
  void on_watch(error_code ec, std::size_t n);
  void enqueue(Out o);
  void write_next();
  void on_write(error_code ec);
  void on_response_done();
  void graceful_close();
  void arm_timer(int ms);
  void disarm_timer();
  void notify_gone();

  ServerCore& core_;
  Strand strand_;
  tcp::socket sock_;
  net::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  boost::beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool reading_ = false;   // a read is outstanding (request, watch or drain)
  bool busy_ = false;      // a request is being answered
  bool closing_ = false;   // response sent with "Connection: close", draining the input
  bool closed_ = false;
  bool sent_continue_ = false;
  bool restart_reading_ = false;  // the watch read was cancelled to read a request
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD: headers only
  unsigned version_ = 11;
  uint64_t req_id_ = 0;
  enum class Resp { none, streaming, done } resp_ = Resp::none;
  std::weak_ptr<Exchange> current_;
  std::shared_ptr<Connection> hold_;  // keeps us alive while answering without a read
  std::deque<Out> outq_;
  bool writing_ = false;
};

// The ResponseWriter of one request.
class Exchange final : public ResponseWriter {
 public:
  // (No executor is kept here: a writer may outlive the io_context.)
  Exchange(std::weak_ptr<Connection> conn, std::shared_ptr<Gate> gate, uint64_t id)
      : conn_(std::move(conn)), gate_(std::move(gate)), id_(id) {}
  ~Exchange() override;
  void respond(int status, const std::string& content_type, std::string body,
               Headers extra_headers = {}) override;
  void start_stream(int status = 200) override;
  bool send(std::string data) override;
  void end_stream() override;
  bool client_gone() const override { return gone_.load(); }
  void on_disconnect(std::function<void()> fn) override;
  void notify_gone();  // on the connection's strand: the client left or the server stopped

 private:
  // Posts f(Connection&) to the connection's strand; false when it or the server is gone.
  bool post(std::function<void(Connection&)> f);

  std::weak_ptr<Connection> conn_;
  std::shared_ptr<Gate> gate_;
  const uint64_t id_;
  std::mutex m_;
  enum class Phase { none, streaming, ended } phase_ = Phase::none;
  std::atomic<bool> gone_{false};
  std::function<void()> on_disconnect_;
  bool disconnect_fired_ = false;
};

}  // namespace tessera::http_detail
