#include "server/proxy/stream_backend.h"

#include <utility>

#include "server/proxy/exchange_streams.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/upstream_bridge.h"

namespace forkd::proxy {

std::unique_ptr<StreamBackend> MakeStreamBackend(StreamClient client) {
  if (client.ctx->h2_upstream != nullptr) {
    return std::make_unique<UpstreamBridge>(std::move(client));
  }
  return std::make_unique<ExchangeStreams>(std::move(client));
}

}  // namespace forkd::proxy
