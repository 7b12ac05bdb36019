// Helpers shared by the libFuzzer targets: reading control bytes off the
// front of an input, and cutting the rest into pieces the way a socket
// might deliver them.
#ifndef FORKD_TESTS_FUZZ_FUZZ_INPUT_H_
#define FORKD_TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace forkd::fuzz {

// The fuzzer's bytes, consumed from the front.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  // One control byte (0 once the input is used up).
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  uint16_t Word() { return static_cast<uint16_t>(Byte() << 8 | Byte()); }
  // Up to the next `sep` (dropped) or the end.
  std::string_view Until(char sep) {
    size_t at = rest_.find(sep);
    std::string_view part = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return part;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

// Ends of the pieces `n` bytes are delivered in (ascending, the last one
// n): a seeded walk of piece sizes from 1 to max_piece.
inline std::vector<size_t> SplitPlan(size_t n, uint16_t seed,
                                     size_t max_piece) {
  std::vector<size_t> ends;
  uint32_t state = seed * 2654435761u + 1;
  size_t at = 0;
  while (at < n) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    at += 1 + state % max_piece;
    ends.push_back(at < n ? at : n);
  }
  return ends;
}

inline std::vector<size_t> OnePiece(size_t n) {
  return n == 0 ? std::vector<size_t>{} : std::vector<size_t>{n};
}

inline std::vector<size_t> ByteByByte(size_t n) {
  std::vector<size_t> ends;
  for (size_t i = 1; i <= n; ++i) ends.push_back(i);
  return ends;
}

}  // namespace forkd::fuzz

#endif  // FORKD_TESTS_FUZZ_FUZZ_INPUT_H_
