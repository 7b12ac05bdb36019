#include "server/http1/fields.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::ForEachListElement;
using syntax::U8;

bool IsHopByHop(std::string_view name,
                const std::vector<std::string>& connection_tokens) {
  static constexpr std::string_view kHopByHop[] = {
      "connection",         "keep-alive",
      "proxy-connection",   "te",
      "transfer-encoding",  "upgrade",
      "proxy-authenticate", "proxy-authorization",
  };
  for (std::string_view h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  for (const std::string& token : connection_tokens) {
    if (EqualsIgnoreCase(name, token)) return true;
  }
  return false;
}

bool IsAllowedInTrailer(std::string_view name) {
  static constexpr std::string_view kNotInTrailers[] = {
      // Framing and the connection.
      "content-length",
      "transfer-encoding",
      "trailer",
      "te",
      "connection",
      "keep-alive",
      "proxy-connection",
      "upgrade",
      // Routing and request modifiers.
      "host",
      "expect",
      "max-forwards",
      "pragma",
      "range",
      "if-match",
      "if-none-match",
      "if-modified-since",
      "if-unmodified-since",
      "if-range",
      "accept",
      "accept-charset",
      "accept-encoding",
      "accept-language",
      // Authentication and state.
      "authorization",
      "proxy-authorization",
      "www-authenticate",
      "proxy-authenticate",
      "authentication-info",
      "proxy-authentication-info",
      "cookie",
      "set-cookie",
      // Response controls.
      "age",
      "cache-control",
      "date",
      "expires",
      "location",
      "retry-after",
      "vary",
      "warning",
      // Set by forkd from the connection; never from a client's trailer.
      "forwarded",
      "x-forwarded-for",
      "x-forwarded-proto",
      "x-forwarded-host",
      "x-request-id",
  };
  // Content-Type, Content-Encoding, Content-Range...: content format.
  if (name.size() >= 8 && EqualsIgnoreCase(name.substr(0, 8), "content-")) {
    return false;
  }
  for (std::string_view n : kNotInTrailers) {
    if (EqualsIgnoreCase(name, n)) return false;
  }
  return true;
}

bool TeAcceptsTrailers(std::string_view te_value) {
  bool found = false;
  ForEachListElement(te_value, [&found](std::string_view element) {
    // "trailers" takes no parameters; a t-coding may have some.
    if (EqualsIgnoreCase(element, "trailers")) found = true;
  });
  return found;
}

void ConnectionTokens(const std::vector<Header>& headers,
                      std::vector<std::string>* tokens) {
  tokens->clear();
  for (const Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, "connection")) continue;
    ForEachListElement(h.value, [tokens](std::string_view token) {
      std::string& t = tokens->emplace_back(token);
      absl::AsciiStrToLower(&t);
    });
  }
}

std::vector<std::string> ConnectionTokens(const std::vector<Header>& headers) {
  std::vector<std::string> tokens;
  ConnectionTokens(headers, &tokens);
  return tokens;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 207:
      return "Multi-Status";
    case 208:
      return "Already Reported";
    case 226:
      return "IM Used";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 305:
      return "Use Proxy";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 423:
      return "Locked";
    case 424:
      return "Failed Dependency";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 506:
      return "Variant Also Negotiates";
    case 507:
      return "Insufficient Storage";
    case 508:
      return "Loop Detected";
    case 510:
      return "Not Extended";
    case 511:
      return "Network Authentication Required";
    default:
      return "";
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  // Local: this absl's string_view is not std::string_view.
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(U8(a[i])) != absl::ascii_tolower(U8(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace forkd::http1
