// timed_io.hpp — socket I/O bounded by a deadline, on corio::with_timeout: when the time is up,
// the pending recv or send is cancelled for real (an io_uring ASYNC_CANCEL, or the fd handler
// removed on epoll/poll) and the coroutine resumes with ETIMEDOUT, with nothing left in flight on
// its buffer. A stop request on the spawned task (a server's shutdown) ends it the same way,
// with ECANCELED.
#pragma once

#include <corio/io.hpp>
#include <corio/task.hpp>
#include <corio/timeout.hpp>

#include <sys/socket.h>
#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

namespace examples {

/// The current context's monotonic clock, in ns: the clock with_timeout counts on.
inline std::int64_t now() {
    return corio::context::current()->now(corio::clock_type::monotonic);
}

/// A recv that ends with ETIMEDOUT at `deadline` (a now() time), or with ECANCELED once the
/// coroutine's stop token is requested (shutdown).
inline corio::task<corio::result<std::size_t>> recv_until(int fd, std::span<char> in,
                                                          std::int64_t deadline) {
    co_return co_await corio::with_timeout(
        std::chrono::nanoseconds(deadline - now()),
        [&](std::stop_token stop) { return corio::recv(fd, std::as_writable_bytes(in), 0, stop); });
}

/// Sends all of `data`: false if the peer is gone, takes no byte for `timeout`, or on shutdown.
inline corio::task<bool> send_all(int fd, std::string_view data, std::chrono::nanoseconds timeout) {
    for (auto bytes = std::as_bytes(std::span(data)); !bytes.empty();) {
        corio::result<std::size_t> n = co_await corio::with_timeout(
            timeout, [&](std::stop_token stop) { return corio::send(fd, bytes, 0, stop); });
        if (!n) co_return false;
        bytes = bytes.subspan(*n);
    }
    co_return true;
}

/// After a server's last answer: stops sending (FIN), then drops what the client still sends
/// until it closes, for a second at most. Closing with unread bytes would reset the connection,
/// and a reset can destroy the answer before the client reads it.
inline corio::task<void> drain(int fd) {
    ::shutdown(fd, SHUT_WR);
    std::array<char, 4096> sink;
    for (const std::int64_t deadline = now() + 1'000'000'000;;) {
        corio::result<std::size_t> n = co_await recv_until(fd, sink, deadline);
        if (!n || *n == 0) co_return;
    }
}

}  // namespace examples
