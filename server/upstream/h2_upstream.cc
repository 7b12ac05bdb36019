#include "server/upstream/h2_upstream.h"

#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/readiness.h"

namespace forkd::upstream {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr uint32_t kInternalError = 0x2;

}  // namespace

// One HTTP/2 connection to the app: its socket, its nghttp2 client session
// and the owner of each of its streams.
class H2UpstreamConnection final : public Connection::Owner,
                                   public H2ClientSession::Handler {
 public:
  H2UpstreamConnection(H2Upstream* mgr, std::unique_ptr<Connection> sock)
      : mgr_(mgr), sock_(std::move(sock)) {
    sock_->owner = this;
    sock_->multiplexed = true;
  }

  absl::Status Init(const H2ClientSession::Settings& settings) {
    auto session = H2ClientSession::Create(settings, this);
    if (!session.ok()) return session.status();
    session_ = std::move(*session);
    return absl::OkStatus();
  }

  H2ClientSession* session() { return session_.get(); }
  Connection* socket() { return sock_.get(); }
  bool dead() const { return dead_; }
  bool dirty = false;

  void Attach(int32_t id, H2StreamOwner* owner) { owners_[id] = owner; }
  void Detach(int32_t id) { owners_.erase(id); }

  // Connection::Owner
  void OnUpstreamEvents(uint32_t events) override {
    if (dead_) return;
    const Readiness ready = Readiness::From(events);
    if (ready.readable) sock_->readable = true;
    if (ready.writable) sock_->writable = true;
    if (ready.hup) sock_->hup = true;
    Drive();
  }

  void Drive() {
    if (dead_) return;
    if (sock_->connecting) {
      if (!sock_->writable) return;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(sock_->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      sock_->connecting = false;
      if (err != 0) {
        Fail(absl::StrCat("connect to ", mgr_->pool_->address().display, ": ",
                          std::strerror(err)),
             /*refused=*/true);
        return;
      }
    }
    bool progress = true;
    while (progress && !dead_) {
      progress = Read();
      if (dead_) return;
      progress |= Flush();
    }
    if (!dead_ && session_->Done() && out_.empty()) {
      if (session_->OpenStreams() > 0) {
        Fail(session_->status().ok()
                 ? std::string("the app's HTTP/2 connection ended")
                 : std::string(session_->status().message()),
             false);
      } else {
        Close();  // GOAWAY from the app and its streams are finished
      }
    }
  }

  // Writes queued frames; returns true when bytes left.
  bool Flush() {
    bool progress = false;
    while (!dead_) {
      if (out_.empty()) session_->TakeOutput(&out_);
      if (out_.empty() || !sock_->writable || sock_->connecting) break;
      std::string_view data = out_.View();
      ssize_t n = send(sock_->fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out_.Consume(static_cast<size_t>(n));
        progress = true;
        if (static_cast<size_t>(n) < data.size()) sock_->writable = false;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        sock_->writable = false;
        break;
      }
      if (n < 0 && errno == EINTR) continue;
      Fail(absl::StrCat("write to app: ", std::strerror(errno)), false);
      return true;
    }
    if (!dead_ && out_.empty()) out_.Shrink(64 * 1024);
    return progress;
  }

  // H2ClientSession::Handler
  void OnResponseHeaders(int32_t id, int status,
                         std::vector<http1::Header> headers,
                         bool end_stream) override {
    if (H2StreamOwner* o = OwnerOf(id)) {
      o->OnUpstreamHeaders(status, std::move(headers), end_stream);
    }
  }
  void OnResponseData(int32_t id, std::string_view data) override {
    if (H2StreamOwner* o = OwnerOf(id)) {
      o->OnUpstreamData(data);
    } else {
      session_->ConsumeResponseData(id, data.size());  // nobody takes them
    }
  }
  void OnResponseEnd(int32_t id, std::vector<http1::Header> trailers) override {
    if (H2StreamOwner* o = OwnerOf(id)) o->OnUpstreamEnd(std::move(trailers));
  }
  void OnRequestDataSent(int32_t id, size_t n) override {
    if (H2StreamOwner* o = OwnerOf(id)) o->OnUpstreamDataSent(n);
  }
  void OnStreamClosed(int32_t id, uint32_t error_code) override {
    auto it = owners_.find(id);
    if (it == owners_.end()) return;
    H2StreamOwner* o = it->second;
    owners_.erase(it);
    H2StreamEnd end;
    end.error_code = error_code;
    if (dead_) {
      end.connection_lost = true;
      end.refused = fail_refused_;
      end.detail = fail_detail_;
    } else if (error_code != 0) {
      end.detail = absl::StrCat("the app reset the stream (HTTP/2 error ",
                                error_code, ")");
    }
    o->OnUpstreamClosed(end);
  }

  // The connection broke: every stream on it ends.
  void Fail(std::string detail, bool refused) {
    if (dead_) return;
    if (!refused) LOG_WARNING("HTTP/2 connection to the app lost: %s", detail);
    dead_ = true;
    fail_detail_ = std::move(detail);
    fail_refused_ = refused;
    session_->Abort(kInternalError);
    mgr_->Retire(this);
  }

  // A normal end (GOAWAY, all streams done).
  void Close() {
    if (dead_) return;
    dead_ = true;
    mgr_->Retire(this);
  }

  // Gives the socket to the pool to close after the event batch (an event
  // for it may still be pending there).
  void ReleaseSocket(Pool* pool) {
    if (sock_) pool->Discard(std::move(sock_));
  }

 private:
  H2StreamOwner* OwnerOf(int32_t id) {
    auto it = owners_.find(id);
    return it == owners_.end() ? nullptr : it->second;
  }

  bool Read() {
    if (!sock_->readable) return false;
    char buf[kReadChunk];
    ssize_t n = recv(sock_->fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (static_cast<size_t>(n) < sizeof(buf) && !sock_->hup) {
        sock_->readable = false;
      }
      absl::Status st = session_->Receive(buf, static_cast<size_t>(n));
      if (!st.ok()) Fail(std::string(st.message()), false);
      return true;
    }
    if (n == 0) {
      Fail("the app closed the connection", false);
      return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      sock_->readable = false;
      return false;
    }
    if (errno == EINTR) return true;
    Fail(absl::StrCat("read from app: ", std::strerror(errno)), false);
    return true;
  }

  H2Upstream* mgr_;
  std::unique_ptr<Connection> sock_;
  std::unique_ptr<H2ClientSession> session_;
  Buffer out_;
  absl::flat_hash_map<int32_t, H2StreamOwner*> owners_;
  bool dead_ = false;
  bool fail_refused_ = false;
  std::string fail_detail_;
};

H2Upstream::H2Upstream(Pool* pool, H2ClientSession::Settings settings,
                       std::function<void(Connection*)> register_fd)
    : pool_(pool), settings_(settings), register_fd_(std::move(register_fd)) {}

H2Upstream::~H2Upstream() = default;

absl::StatusOr<H2StreamRef> H2Upstream::Open(
    H2StreamOwner* owner, std::string_view method, std::string_view scheme,
    std::string_view authority, std::string_view path,
    const std::vector<http1::Header>& headers, bool end_stream) {
  H2UpstreamConnection* conn = nullptr;
  for (auto& c : conns_) {
    if (c->dead()) continue;
    if (c->session()->settings_received()) {
      app_max_streams_ = c->session()->RemoteMaxConcurrentStreams();
    }
    if (conn == nullptr && c->session()->CanOpenStream()) conn = c.get();
  }
  if (conn == nullptr) {
    std::unique_ptr<Connection> sock;
    int err = 0;
    switch (pool_->Connect(&sock, &err)) {
      case ConnectResult::kConnected:
      case ConnectResult::kInProgress:
        break;
      case ConnectResult::kRetryLater:
        return absl::UnavailableError(
            absl::StrCat("connect to ", pool_->address().display,
                         ": the app's accept queue is full"));
      case ConnectResult::kFailed:
        return absl::UnavailableError(absl::StrCat(
            "connect to ", pool_->address().display, ": ", std::strerror(err)));
    }
    auto c = std::make_unique<H2UpstreamConnection>(this, std::move(sock));
    absl::Status st = c->Init(settings_);
    if (!st.ok()) {
      c->ReleaseSocket(pool_);
      return st;
    }
    if (app_max_streams_ > 0) {
      c->session()->AssumeMaxConcurrentStreams(app_max_streams_);
    }
    if (register_fd_ && !c->socket()->registered) register_fd_(c->socket());
    ++opened_;
    LOG_DEBUG("new HTTP/2 connection to the app (%zu open)", conns_.size() + 1);
    conn = c.get();
    conns_.push_back(std::move(c));
  }
  absl::StatusOr<int32_t> id = conn->session()->SubmitRequest(
      method, scheme, authority, path, headers, end_stream);
  if (!id.ok()) return id.status();
  conn->Attach(*id, owner);
  MarkDirty(conn);
  return H2StreamRef{conn, *id};
}

absl::Status H2Upstream::Append(const H2StreamRef& ref, std::string_view data) {
  absl::Status st = ref.conn->session()->AppendRequestData(ref.id, data);
  MarkDirty(ref.conn);
  return st;
}

absl::Status H2Upstream::End(const H2StreamRef& ref,
                             std::vector<http1::Header> trailers) {
  absl::Status st =
      ref.conn->session()->EndRequest(ref.id, std::move(trailers));
  MarkDirty(ref.conn);
  return st;
}

size_t H2Upstream::Queued(const H2StreamRef& ref) const {
  return ref.conn->session()->QueuedRequestBytes(ref.id);
}

void H2Upstream::Consume(const H2StreamRef& ref, size_t n) {
  ref.conn->session()->ConsumeResponseData(ref.id, n);
  MarkDirty(ref.conn);
}

void H2Upstream::Cancel(const H2StreamRef& ref, uint32_t error_code) {
  ref.conn->Detach(ref.id);
  if (ref.conn->dead()) return;
  ref.conn->session()->ResetStream(ref.id, error_code);
  MarkDirty(ref.conn);
}

void H2Upstream::MarkDirty(H2UpstreamConnection* c) {
  if (c->dirty || c->dead()) return;
  c->dirty = true;
  dirty_.push_back(c);
}

void H2Upstream::Retire(H2UpstreamConnection* c) {
  auto it = std::find_if(conns_.begin(), conns_.end(),
                         [c](const auto& p) { return p.get() == c; });
  if (it == conns_.end()) return;
  c->ReleaseSocket(pool_);
  retired_.push_back(std::move(*it));
  conns_.erase(it);
  dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), c), dirty_.end());
}

void H2Upstream::FlushPending() {
  retired_.clear();  // no connection is on the stack here
  // Flushing a connection can queue frames on others (a stream's window
  // update for its client, never the app's), so a few rounds at most.
  for (int round = 0; round < 4 && !dirty_.empty(); ++round) {
    std::vector<H2UpstreamConnection*> now;
    now.swap(dirty_);
    for (H2UpstreamConnection* c : now) {
      c->dirty = false;
      if (!c->dead()) c->Drive();
    }
  }
}

}  // namespace forkd::upstream
