// A growable byte buffer with a read offset: bytes are appended at the end
// and consumed from the front without zero-filling or per-byte copies.
#ifndef FORKD_SERVER_COMMON_BUFFER_H_
#define FORKD_SERVER_COMMON_BUFFER_H_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace forkd {

class Buffer {
 public:
  size_t size() const { return end_ - begin_; }
  bool empty() const { return end_ == begin_; }
  std::string_view View() const { return {data_.get() + begin_, size()}; }

  // Returns room for at least `want` bytes at the end; Commit() what was
  // actually written there.
  char* Reserve(size_t want) {
    if (capacity_ - end_ < want) Grow(want);
    return data_.get() + end_;
  }
  void Commit(size_t n) { end_ += n; }
  // Bytes that fit at the end without growing.
  size_t room() const { return capacity_ - end_; }

  void Append(std::string_view s) {
    memcpy(Reserve(s.size()), s.data(), s.size());
    end_ += s.size();
  }
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void Clear() { begin_ = end_ = 0; }
  // Gives back memory after a large body, keeping small buffers warm.
  void Shrink(size_t keep) {
    if (capacity_ > keep && empty()) {
      data_.reset();
      capacity_ = 0;
    }
  }

 private:
  void Grow(size_t want) {
    size_t live = size();
    if (begin_ > 0 && capacity_ - live >= want && live <= capacity_ / 2) {
      memmove(data_.get(), data_.get() + begin_, live);  // compact in place
    } else {
      // Small first: most connections carry small messages, and thousands
      // of them each holding whole pages is what made workers big.
      size_t cap = capacity_ ? capacity_ : 512;
      while (cap - live < want) cap *= 2;
      std::unique_ptr<char[]> next(new char[cap]);
      if (live) memcpy(next.get(), data_.get() + begin_, live);
      data_ = std::move(next);
      capacity_ = cap;
    }
    begin_ = 0;
    end_ = live;
  }

  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace forkd

#endif  // FORKD_SERVER_COMMON_BUFFER_H_
