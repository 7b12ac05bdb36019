#include "server/arbiter/listeners.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/log.h"

namespace forkd::arbiter {
namespace {

// A socket's local address, comparable between a --bind value and an
// inherited fd.
struct SockName {
  int family = AF_UNSPEC;
  std::string addr;  // raw address bytes (TCP) or the path (unix)
  int port = 0;
};

SockName FromSockaddr(const sockaddr* sa, socklen_t len) {
  SockName n;
  n.family = sa->sa_family;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    n.addr.assign(reinterpret_cast<const char*>(&in->sin_addr),
                  sizeof(in->sin_addr));
    n.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    n.addr.assign(reinterpret_cast<const char*>(&in6->sin6_addr),
                  sizeof(in6->sin6_addr));
    n.port = ntohs(in6->sin6_port);
  } else if (sa->sa_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
    size_t path_len = len > offsetof(sockaddr_un, sun_path)
                          ? len - offsetof(sockaddr_un, sun_path)
                          : 0;
    n.addr.assign(un->sun_path, path_len);
    // Pathname sockets carry a trailing NUL; abstract ones start with one.
    if (!n.addr.empty() && n.addr[0] != '\0') {
      n.addr = std::string(n.addr.c_str());
    }
  }
  return n;
}

absl::StatusOr<SockName> LocalName(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return absl::InternalError(
        absl::StrCat("getsockname(", fd, "): ", std::strerror(errno)));
  }
  return FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::string UrlOf(const SockName& n) {
  char text[INET6_ADDRSTRLEN] = "";
  switch (n.family) {
    case AF_INET:
      inet_ntop(AF_INET, n.addr.data(), text, sizeof(text));
      return absl::StrCat("http://", text, ":", n.port);
    case AF_INET6:
      inet_ntop(AF_INET6, n.addr.data(), text, sizeof(text));
      return absl::StrCat("http://[", text, "]:", n.port);
    case AF_UNIX:
      if (!n.addr.empty() && n.addr[0] == '\0') {
        return absl::StrCat("unix:@", n.addr.substr(1));
      }
      return absl::StrCat("unix:", n.addr);
  }
  return "unknown";
}

std::string Describe(const BindAddress& b) {
  switch (b.kind) {
    case BindAddress::Kind::kTcp:
      return b.HostPort();
    case BindAddress::Kind::kUnix:
      return absl::StrCat("unix:", b.path);
    case BindAddress::Kind::kFd:
      return absl::StrCat("fd://", b.fd);
  }
  return "?";
}

absl::Status Errno(absl::string_view what, const BindAddress& b, int err) {
  return absl::UnavailableError(absl::StrCat("cannot ", what, " ", Describe(b),
                                             ": ", std::strerror(err)));
}

// Checks that `fd` is a listening stream socket and makes it non-blocking
// and close-on-exec.
absl::Status AdoptSocket(int fd, absl::string_view source) {
  int type = 0, listening = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": fd ", fd, " is not a socket (", std::strerror(errno), ")"));
  }
  len = sizeof(listening);
  if (type != SOCK_STREAM ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
      !listening) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": fd ", fd, " is not a listening stream socket"));
  }
  int fl = fcntl(fd, F_GETFL);
  int fdfl = fcntl(fd, F_GETFD);
  if (fl < 0 || fdfl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
      fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat(source, ": fcntl(", fd, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Listener> OpenTcp(const BindAddress& b,
                                 const config::Config& config) {
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = absl::StrCat(b.port);
  int rc = getaddrinfo(b.host.empty() ? nullptr : b.host.c_str(), port.c_str(),
                       &hints, &res);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", Describe(b), ": ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(
      absl::StrCat("cannot bind ", Describe(b), ": no usable address"));
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      last = Errno("create a socket for", b, errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (config.reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      last = Errno("set SO_REUSEPORT on", b, errno);
      close(fd);
      continue;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Errno("bind", b, errno);
      close(fd);
      continue;
    }
    if (listen(fd, config.backlog) != 0) {
      last = Errno("listen on", b, errno);
      close(fd);
      continue;
    }
    freeaddrinfo(res);
    absl::StatusOr<SockName> name = LocalName(fd);
    Listener l;
    l.fd = fd;
    l.url = name.ok() ? UrlOf(*name) : Describe(b);
    return l;
  }
  freeaddrinfo(res);
  return last;
}

absl::StatusOr<Listener> OpenUnix(const BindAddress& b,
                                  const config::Config& config) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (b.path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot bind ", Describe(b), ": path longer than ",
                     sizeof(addr.sun_path) - 1, " bytes"));
  }
  memcpy(addr.sun_path, b.path.data(), b.path.size());
  struct stat st;
  if (lstat(b.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot bind ", Describe(b), ": ", b.path,
                       " exists and is not a socket"));
    }
    // A stale socket from an earlier run (Gunicorn removes it too).
    if (unlink(b.path.c_str()) != 0 && errno != ENOENT) {
      return Errno("remove the old socket file of", b, errno);
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("create a socket for", b, errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return Errno("bind", b, err);
  }
  if (listen(fd, config.backlog) != 0) {
    int err = errno;
    close(fd);
    unlink(b.path.c_str());
    return Errno("listen on", b, err);
  }
  Listener l;
  l.fd = fd;
  l.url = absl::StrCat("unix:", b.path);
  l.unix_path = b.path;
  return l;
}

// The local addresses a --bind value may stand for (a name may resolve to
// several).
std::vector<SockName> CandidateNames(const BindAddress& b) {
  std::vector<SockName> out;
  if (b.kind == BindAddress::Kind::kUnix) {
    out.push_back({AF_UNIX, b.path, 0});
    return out;
  }
  if (b.kind != BindAddress::Kind::kTcp) return out;
  addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = absl::StrCat(b.port);
  if (getaddrinfo(b.host.empty() ? nullptr : b.host.c_str(), port.c_str(),
                  &hints, &res) != 0) {
    return out;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    out.push_back(FromSockaddr(ai->ai_addr, ai->ai_addrlen));
  }
  freeaddrinfo(res);
  return out;
}

bool Matches(const SockName& bound, const SockName& wanted) {
  if (bound.family != wanted.family || bound.addr != wanted.addr) return false;
  return bound.family == AF_UNIX || wanted.port == 0 ||
         bound.port == wanted.port;
}

absl::StatusOr<std::vector<Listener>> AdoptInherited(
    const config::Config& config, const std::string& fd_list) {
  std::vector<Listener> out;
  auto fail = [&out](absl::Status s) {
    for (Listener& l : out) close(l.fd);
    return s;
  };
  std::vector<BindAddress> binds;
  std::vector<bool> bind_used(config.bind.size(), false);
  for (const std::string& value : config.bind) {
    absl::StatusOr<BindAddress> b = ParseBind(value);
    if (!b.ok()) return b.status();
    binds.push_back(*b);
  }
  for (absl::string_view part :
       absl::StrSplit(fd_list, ',', absl::SkipWhitespace())) {
    int fd;
    if (!absl::SimpleAtoi(part, &fd) || fd < 0) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          "FORKD_INHERITED_FDS: \"", part, "\" is not a file descriptor")));
    }
    if (absl::Status s = AdoptSocket(fd, "FORKD_INHERITED_FDS"); !s.ok()) {
      return fail(s);
    }
    Listener l;
    l.fd = fd;
    l.inherited = true;
    absl::StatusOr<SockName> name = LocalName(fd);
    l.url = name.ok() ? UrlOf(*name) : absl::StrCat("fd://", fd);
    for (size_t i = 0; i < binds.size() && name.ok(); ++i) {
      if (bind_used[i]) continue;
      bool hit = binds[i].kind == BindAddress::Kind::kFd && binds[i].fd == fd;
      for (const SockName& want : CandidateNames(binds[i])) {
        hit = hit || Matches(*name, want);
      }
      if (hit) {
        bind_used[i] = true;
        l.bind = config.bind[i];
        if (name->family == AF_UNIX) l.unix_path = name->addr;
        break;
      }
    }
    out.push_back(std::move(l));
  }
  for (size_t i = 0; i < binds.size(); ++i) {
    if (!bind_used[i]) {
      LOG_WARNING(
          "--bind %s is not among the inherited sockets; it is not served "
          "(restart forkd to bind it)",
          config.bind[i]);
    }
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "FORKD_INHERITED_FDS is set but names no socket");
  }
  return out;
}

}  // namespace

absl::StatusOr<BindAddress> ParseBind(absl::string_view value) {
  absl::StatusOr<BindAddress> b =
      common::ParseAddress(value, common::AddressUse::kListen);
  if (!b.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bind: \"", value, "\": ", b.status().message()));
  }
  return b;
}

absl::StatusOr<std::vector<Listener>> OpenListeners(
    const config::Config& config,
    const std::optional<std::string>& inherited_fds) {
  if (inherited_fds.has_value()) return AdoptInherited(config, *inherited_fds);
  std::vector<Listener> out;
  for (const std::string& value : config.bind) {
    absl::StatusOr<BindAddress> b = ParseBind(value);
    absl::StatusOr<Listener> l = absl::UnknownError("unreachable");
    if (!b.ok()) {
      l = b.status();
    } else {
      switch (b->kind) {
        case BindAddress::Kind::kTcp:
          l = OpenTcp(*b, config);
          break;
        case BindAddress::Kind::kUnix:
          l = OpenUnix(*b, config);
          break;
        case BindAddress::Kind::kFd:
          if (absl::Status s = AdoptSocket(b->fd, value); !s.ok()) {
            l = s;
          } else {
            absl::StatusOr<SockName> name = LocalName(b->fd);
            Listener adopted;
            adopted.fd = b->fd;
            adopted.inherited = true;
            adopted.url = name.ok() ? UrlOf(*name) : value;
            l = adopted;
          }
          break;
      }
    }
    if (!l.ok()) {
      CloseListeners(out, /*unlink_unix=*/true);
      return l.status();
    }
    l->bind = value;
    out.push_back(std::move(*l));
  }
  return out;
}

std::string ListenerFdList(const std::vector<Listener>& listeners) {
  return absl::StrJoin(listeners, ",", [](std::string* out, const Listener& l) {
    absl::StrAppend(out, l.fd);
  });
}

void CloseListeners(std::vector<Listener>& listeners, bool unlink_unix) {
  for (Listener& l : listeners) {
    if (l.fd >= 0) close(l.fd);
    l.fd = -1;
    if (unlink_unix && !l.unix_path.empty() && l.unix_path[0] != '\0') {
      unlink(l.unix_path.c_str());
    }
  }
  listeners.clear();
}

}  // namespace forkd::arbiter
