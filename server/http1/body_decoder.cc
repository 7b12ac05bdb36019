#include "server/http1/body_decoder.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::FieldLineMax;
using syntax::FirstOverLength;
using syntax::IsOws;
using syntax::kFieldValueChar;
using syntax::kTokenChar;
using syntax::ParseFieldLine;
using syntax::SaturatingAdd;
using syntax::SaturatingMul;
using syntax::U8;

namespace {

// A chunk-size line (size and extensions, without CRLF).
constexpr size_t kMaxChunkSizeLine = 4096;
// A chunked body's trailer section when its limits leave it unbounded.
constexpr size_t kMaxTrailerSection = 64 * 1024;

// Parses chunk-size [chunk-ext] (RFC 9112 7.1, 7.1.1), the line without its
// CRLF. Returns nullptr on success, else the cause.
const char* ParseChunkSizeLine(std::string_view line, uint64_t* size) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < line.size() && absl::ascii_isxdigit(U8(line[i]))) {
    if (i == 16) return "chunk size too large";
    char c = line[i];
    int d = absl::ascii_isdigit(U8(c)) ? c - '0'
                                       : absl::ascii_tolower(U8(c)) - 'a' + 10;
    v = (v << 4) | static_cast<uint64_t>(d);
    ++i;
  }
  if (i == 0) return "invalid chunk size";
  *size = v;
  // *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
  auto skip_bws = [&] {
    while (i < line.size() && IsOws(line[i])) ++i;
  };
  auto token_end = [&] {
    size_t start = i;
    while (i < line.size() && kTokenChar[U8(line[i])]) ++i;
    return i > start;
  };
  for (bool first = true;; first = false) {
    size_t before = i;
    skip_bws();
    if (i == line.size() && i == before) return nullptr;
    if (i == line.size() || line[i] != ';') {
      // "5x", "5 " or "5;a b": garbage after the size or an extension.
      return first ? "invalid chunk size" : "invalid chunk extension";
    }
    ++i;
    skip_bws();
    if (!token_end()) return "invalid chunk extension";
    size_t after_name = i;
    skip_bws();
    if (i < line.size() && line[i] == '=') {
      ++i;
      skip_bws();
      if (i < line.size() && line[i] == '"') {
        ++i;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i];
          if (c == '"') {
            closed = true;
            ++i;
            break;
          }
          if (c == '\\') {
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            if (i + 1 >= line.size() || !kFieldValueChar[U8(line[i + 1])]) {
              return "invalid chunk extension";
            }
            i += 2;
            continue;
          }
          if (!kFieldValueChar[U8(c)]) return "invalid chunk extension";
          ++i;
        }
        if (!closed) return "invalid chunk extension";
      } else if (!token_end()) {
        return "invalid chunk extension";
      }
    } else {
      i = after_name;
    }
  }
}

}  // namespace

BodyDecoder::BodyDecoder(Framing framing, uint64_t content_length,
                         uint64_t max_body, TrailerLimits trailer_limits)
    : framing_(framing), max_body_(max_body), trailer_limits_(trailer_limits) {
  // The section is capped like a request head's fields: every field at its
  // largest, plus the final empty line.
  const size_t fields = trailer_limits_.max_fields;
  const size_t size = trailer_limits_.max_field_size;
  trailer_section_cap_ = (fields && size)
                             ? SaturatingAdd(SaturatingMul(fields, size), 2)
                             : kMaxTrailerSection;
  trailer_line_max_ = size ? FieldLineMax(size) : trailer_section_cap_;
  switch (framing) {
    case Framing::kNone:
      done_ = true;
      break;
    case Framing::kContentLength:
      remaining_ = content_length;
      if (max_body_ && content_length > max_body_) {
        Fail(ErrorKind::kBodyTooLarge, "Content-Length exceeds limit");
      } else if (content_length == 0) {
        done_ = true;
      }
      break;
    case Framing::kChunked:
    case Framing::kUntilClose:
      break;
  }
}

void BodyDecoder::Fail(ErrorKind kind, std::string_view detail) {
  error_.kind = kind;
  error_.detail.assign(detail);
}

size_t BodyDecoder::Decode(std::string_view in, std::string* out) {
  if (done_ || failed()) return 0;
  switch (framing_) {
    case Framing::kNone:
      return 0;
    case Framing::kContentLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
      if (out != nullptr) out->append(in.data(), n);
      remaining_ -= n;
      payload_bytes_ += n;
      if (remaining_ == 0) done_ = true;
      return n;
    }
    case Framing::kUntilClose: {
      size_t n = in.size();
      if (max_body_ && payload_bytes_ + n > max_body_) {
        n = static_cast<size_t>(max_body_ - payload_bytes_);
        Fail(ErrorKind::kBodyTooLarge, "body exceeds limit");
      }
      if (out != nullptr) out->append(in.data(), n);
      payload_bytes_ += n;
      return n;
    }
    case Framing::kChunked:
      return DecodeChunked(in, out);
  }
  return 0;
}

size_t BodyDecoder::DecodeChunked(std::string_view in, std::string* out) {
  size_t i = 0;
  while (i < in.size()) {
    switch (chunk_state_) {
      case ChunkState::kSize:
      case ChunkState::kTrailer: {
        const bool size_line = chunk_state_ == ChunkState::kSize;
        const void* lf = memchr(in.data() + i, '\n', in.size() - i);
        size_t end = lf ? static_cast<const char*>(lf) - in.data() : in.size();
        const size_t fresh = end - i;
        if (size_line) {
          // +1: the line's CR is held until its LF arrives.
          if (line_.size() + fresh > kMaxChunkSizeLine + 1) {
            Fail(ErrorKind::kBadRequest, "chunk size line too long");
            return i;
          }
        } else if (!CheckTrailerLimits(in.substr(i, fresh), lf != nullptr)) {
          return i;
        }
        std::string_view line;
        if (lf == nullptr) {
          line_.append(in.data() + i, end - i);
          return in.size();
        }
        if (line_.empty()) {
          line = in.substr(i, end - i);  // whole line in this input: no copy
        } else {
          line_.append(in.data() + i, end - i);
          line = line_;
        }
        i = end + 1;
        if (line.empty() || line.back() != '\r') {
          Fail(ErrorKind::kBadRequest,
               size_line ? "bare LF in chunk size" : "bare LF in trailer");
          return i - 1;
        }
        line.remove_suffix(1);
        if (size_line) {
          if (!HandleSizeLine(line)) return i - 1;
        } else if (line.empty()) {
          line_.clear();
          chunk_state_ = ChunkState::kDone;
          done_ = true;
          return i;
        } else {
          if (trailer_limits_.max_fields &&
              trailers_.size() >= trailer_limits_.max_fields) {
            Fail(ErrorKind::kHeadersTooLarge, "too many trailer fields");
            return i - 1;
          }
          std::string_view name;
          std::string_view value;
          if (const char* bad = ParseFieldLine(line, &name, &value)) {
            Fail(ErrorKind::kBadRequest,
                 std::string("invalid trailer field: ") + bad);
            return i - 1;
          }
          trailers_.push_back(Header{std::string(name), std::string(value)});
        }
        line_.clear();
        break;
      }
      case ChunkState::kData: {
        size_t n =
            static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        if (out != nullptr) out->append(in.data() + i, n);
        i += n;
        remaining_ -= n;
        payload_bytes_ += n;
        if (remaining_ == 0) chunk_state_ = ChunkState::kDataCr;
        break;
      }
      case ChunkState::kDataCr:
      case ChunkState::kDataLf:
        if (in[i] != (chunk_state_ == ChunkState::kDataCr ? '\r' : '\n')) {
          Fail(ErrorKind::kBadRequest, "missing CRLF after chunk data");
          return i;
        }
        ++i;
        chunk_state_ = chunk_state_ == ChunkState::kDataCr ? ChunkState::kDataLf
                                                           : ChunkState::kSize;
        break;
      case ChunkState::kSizeLf:
      case ChunkState::kTrailerLf:
      case ChunkState::kDone:
        return i;
    }
  }
  return i;
}

bool BodyDecoder::CheckTrailerLimits(std::string_view fresh, bool has_lf) {
  // The line's length and the section's size are both broken by some byte;
  // the one broken first decides (the head parsers' rule), the line's
  // length on a tie. Positions count this line's bytes.
  constexpr size_t kNot = std::string_view::npos;
  const size_t held = line_.size();
  const size_t seen = held + fresh.size();
  const size_t line_at = FirstOverLength(
      seen, [&](size_t k) { return k < held ? line_[k] : fresh[k - held]; },
      trailer_line_max_);
  // trailer_bytes_ <= cap: it was checked with every byte added to it.
  const size_t room = trailer_section_cap_ - trailer_bytes_;
  const size_t section_at = fresh.size() > room ? held + room + 1 : kNot;
  if (line_at != kNot && line_at <= section_at) {
    Fail(ErrorKind::kHeadersTooLarge, "trailer field too long");
    return false;
  }
  // The LF is one more byte of the section.
  if (section_at != kNot || fresh.size() + (has_lf ? 1 : 0) > room) {
    Fail(ErrorKind::kHeadersTooLarge, "trailer section too large");
    return false;
  }
  trailer_bytes_ += fresh.size() + (has_lf ? 1 : 0);
  return true;
}

bool BodyDecoder::HandleSizeLine(std::string_view line) {
  if (memchr(line.data(), '\r', line.size()) != nullptr) {
    Fail(ErrorKind::kBadRequest, "bare CR in chunk size");
    return false;
  }
  uint64_t size = 0;
  if (const char* bad = ParseChunkSizeLine(line, &size)) {
    Fail(ErrorKind::kBadRequest, bad);
    return false;
  }
  if (size == 0) {
    chunk_state_ = ChunkState::kTrailer;
    return true;
  }
  if (max_body_ && size > max_body_ - payload_bytes_) {
    Fail(ErrorKind::kBodyTooLarge, "chunked body exceeds limit");
    return false;
  }
  remaining_ = size;
  chunk_state_ = ChunkState::kData;
  return true;
}

void BodyDecoder::OnEof() {
  if (done_ || failed()) return;
  if (framing_ == Framing::kUntilClose) {
    done_ = true;
  } else {
    Fail(ErrorKind::kBadRequest, "connection closed before end of body");
  }
}

size_t BodyDecoder::AcceptDecoded(std::string_view data, std::string* out) {
  if (done_ || failed() || data.empty()) return 0;
  switch (framing_) {
    case Framing::kNone:
      return 0;
    case Framing::kChunked:
      // As one chunk of that size would be judged (HandleSizeLine).
      if (max_body_ && data.size() > max_body_ - payload_bytes_) {
        Fail(ErrorKind::kBodyTooLarge, "chunked body exceeds limit");
        return 0;
      }
      if (out != nullptr) out->append(data);
      payload_bytes_ += data.size();
      return data.size();
    case Framing::kContentLength:
    case Framing::kUntilClose:
      return Decode(data, out);
  }
  return 0;
}

bool BodyDecoder::EndDecoded(std::vector<Header> trailers) {
  if (done_ || failed()) return trailers.empty();
  if (framing_ != Framing::kChunked) {
    OnEof();
    return trailers.empty();
  }
  // The section as Decode() reads it: each "name: value" line judged for
  // its length and the section's size, then counted.
  for (const Header& f : trailers) {
    const size_t len = f.name.size() + 2 + f.value.size();
    const size_t room = trailer_section_cap_ - trailer_bytes_;
    const size_t line_at = len > trailer_line_max_ ? trailer_line_max_ + 1
                                                   : std::string_view::npos;
    const size_t section_at = len > room ? room + 1 : std::string_view::npos;
    if (line_at != std::string_view::npos && line_at <= section_at) {
      Fail(ErrorKind::kHeadersTooLarge, "trailer field too long");
      return true;
    }
    // The line's CR and LF are two more bytes of the section.
    if (section_at != std::string_view::npos || len + 2 > room) {
      Fail(ErrorKind::kHeadersTooLarge, "trailer section too large");
      return true;
    }
    trailer_bytes_ += len + 2;
    if (trailer_limits_.max_fields &&
        trailers_.size() >= trailer_limits_.max_fields) {
      Fail(ErrorKind::kHeadersTooLarge, "too many trailer fields");
      return true;
    }
    trailers_.push_back(f);
  }
  chunk_state_ = ChunkState::kDone;
  done_ = true;
  return true;
}

}  // namespace forkd::http1
