// sockets.hpp — the socket set-up the examples share: a server's listening socket on the
// loopback (or the reason there is none), and TCP_NODELAY.
#pragma once

#include <fmt/format.h>
#include <corio/net.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <cstdint>
#include <optional>
#include <string_view>

namespace examples {

/// Listens on 127.0.0.1:`port` (0: any free port): the listening fd, or std::nullopt after
/// saying why not on stderr (`program: listen on ADDRESS: REASON`).
inline std::optional<int> listen_on_loopback(std::string_view program, int port,
                                             int backlog = 128) {
    const auto address = corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value();
    corio::result<int> listener = corio::net::listen(address, backlog);
    if (listener) return *listener;
    fmt::print(stderr, "{}: listen on {}: {}\n", program, address.to_string(),
               listener.error().message());
    return std::nullopt;
}

/// Turns Nagle's algorithm off on the TCP socket `fd`: a small send goes out at once instead of
/// waiting for the previous one's acknowledgement (which the peer may delay).
inline void no_delay(int fd) noexcept {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace examples
