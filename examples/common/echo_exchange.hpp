// echo_exchange.hpp — a batch sent to an echo server and its echo read back, on one socket from
// one coroutine: corio's send and recv alternate so that at most a window of bytes is in flight.
// Without that bound, a batch larger than the socket buffers would deadlock: the server blocks
// writing its echo (nobody reads it) while the client blocks writing the rest (nobody reads it).
#pragma once

#include <fmt/format.h>
#include <corio/io.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>

namespace examples {

/// At most this many bytes are in flight (sent, not yet echoed): this much always fits in the
/// socket buffers.
inline constexpr std::size_t echo_window = 32 * 1024;

/// Sends `out` on `fd` and receives its echo into `in` (min(out.size(), echo_window) bytes or
/// more). Each piece received goes to `echoed(at, bytes)` (`at`: its offset in `out`), which
/// returns what is wrong with it, or "" to go on. Returns "" once all of `out` came back, else
/// what went wrong: "send: …", "recv: …", "the server closed the connection", or what `echoed`
/// said. Allocates nothing (corio pools the coroutine's frame; "" needs no allocation).
template <class Echoed>
corio::task<std::string> echo_exchange(int fd, std::span<const std::byte> out,
                                       std::span<std::byte> in, Echoed echoed) {
    std::size_t sent = 0, received = 0;
    while (received < out.size()) {
        if (sent < out.size() && sent - received < echo_window) {
            const std::size_t len = std::min(out.size() - sent, echo_window - (sent - received));
            corio::result<std::size_t> n = co_await corio::send(fd, out.subspan(sent, len));
            if (!n) co_return fmt::format("send: {}", n.error().message());
            sent += *n;
            continue;
        }
        const std::size_t len = std::min({sent - received, echo_window, in.size()});
        corio::result<std::size_t> n = co_await corio::recv(fd, in.first(len));
        if (!n) co_return fmt::format("recv: {}", n.error().message());
        if (*n == 0) co_return "the server closed the connection";
        if (std::string wrong = echoed(received, in.first(*n)); !wrong.empty()) co_return wrong;
        received += *n;
    }
    co_return "";
}

}  // namespace examples
