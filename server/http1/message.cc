#include "server/http1/message.h"

#include "server/http1/fields.h"

namespace forkd::http1 {

int StatusForError(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
    case ErrorKind::kBadRequest:
      return 400;
    case ErrorKind::kUriTooLong:
      return 414;
    case ErrorKind::kHeadersTooLarge:
      return 431;
    case ErrorKind::kBodyTooLarge:
      return 413;
    case ErrorKind::kNotImplemented:
      return 501;
    case ErrorKind::kVersionNotSupported:
      return 505;
  }
  return 400;
}

namespace {

const std::string* FindHeader(const std::vector<Header>& headers,
                              std::string_view name) {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

}  // namespace

const std::string* RequestHead::Find(std::string_view name) const {
  return FindHeader(headers, name);
}

const std::string* ResponseHead::Find(std::string_view name) const {
  return FindHeader(headers, name);
}

}  // namespace forkd::http1
