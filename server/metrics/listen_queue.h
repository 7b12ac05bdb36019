// The accept queue of a listening TCP socket, from Linux TCP_INFO: for a
// listener, tcpi_unacked is the number of connections waiting for accept()
// and tcpi_sacked the backlog limit (what listen() got, capped by somaxconn).
#ifndef FORKD_SERVER_METRICS_LISTEN_QUEUE_H_
#define FORKD_SERVER_METRICS_LISTEN_QUEUE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace forkd::metrics {

struct ListenQueue {
  std::string listener;     // its URL, e.g. "http://0.0.0.0:8000"
  uint64_t length = 0;      // connections waiting to be accepted now
  uint64_t max_length = 0;  // the backlog limit
};

// Reads the queue of listening socket `fd`. Unimplemented for sockets
// without TCP_INFO (unix sockets); Internal for other errors. Any thread.
absl::StatusOr<ListenQueue> ReadListenQueue(int fd,
                                            const std::string& listener);

}  // namespace forkd::metrics

#endif  // FORKD_SERVER_METRICS_LISTEN_QUEUE_H_
