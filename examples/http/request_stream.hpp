// http/request_stream.hpp — the requests of one connection, as its bytes arrive: pure, no I/O.
//
// The server receives into space(), reports the bytes with received(), and asks front() for the
// request at the start of the stream; once it has answered a request, pop() drops the request's
// head and body. A body not received yet is dropped as it arrives: received() counts those
// bytes against it before any reach the next request. The buffer has a fixed size (2 ×
// max_head): a head is never longer than max_head, and a body is never kept.
#pragma once

#include "http/request.hpp"

#include <cstddef>
#include <span>
#include <vector>

namespace http {

class request_stream {
public:
    /// Allocates the buffer: 2 × limit.max_head bytes.
    explicit request_stream(limits limit = {}) : limit_(limit), buffer_(2 * limit.max_head) {}

    /// Where the next bytes go. Never empty while front() is incomplete.
    std::span<char> space() noexcept { return std::span(buffer_).subspan(size_); }

    /// `n` bytes were written at the start of space() (bytes of a popped body are dropped).
    void received(std::size_t n) noexcept;

    /// The request at the start of the stream: complete, incomplete, or an error for good. The
    /// request's views stay valid until the next call of received() or pop().
    parse_result front() const noexcept;

    /// Drops the complete request at the start, its body included.
    void pop() noexcept;

    /// Whether bytes of a request that is not complete have arrived (a request begun).
    bool begun() const noexcept { return size_ > 0; }

private:
    limits limit_;
    std::vector<char> buffer_;
    std::size_t size_ = 0;       // buffer_[0, size_) holds the stream's bytes
    std::size_t body_left_ = 0;  // bytes of a popped request's body still to come, to drop
};

}  // namespace http
