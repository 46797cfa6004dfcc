// http/request_stream.cpp — a fixed buffer, compacted on pop().
#include "http/request_stream.hpp"

#include <algorithm>
#include <cstring>

namespace http {

void request_stream::received(std::size_t n) noexcept {
    const std::size_t dropped = std::min(n, body_left_);
    body_left_ -= dropped;
    std::memmove(buffer_.data() + size_, buffer_.data() + size_ + dropped, n - dropped);
    size_ += n - dropped;
}

parse_result request_stream::front() const noexcept {
    if (body_left_ > 0) return {};
    return parse_request({buffer_.data(), size_}, limit_);
}

void request_stream::pop() noexcept {
    const parse_result r = front();
    if (!r.head) return;
    const std::size_t total = r.head->head_size + r.head->content_length;
    const std::size_t here = std::min(total, size_);
    std::memmove(buffer_.data(), buffer_.data() + here, size_ - here);
    size_ -= here;
    body_left_ = total - here;
}

}  // namespace http
