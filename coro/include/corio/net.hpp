// corio::net — listening and connecting sockets without the sockaddr boilerplate.
//
// Addresses are numeric (no DNS): "127.0.0.1", "::1", "0.0.0.0", "::". Every socket is created
// SOCK_NONBLOCK | SOCK_CLOEXEC, ready for corio's I/O awaitables on every backend.
#pragma once

#include <corio/io.hpp>
#include <corio/result.hpp>
#include <corio/task.hpp>

#include <sys/socket.h>
#include <cstdint>
#include <stop_token>
#include <string>
#include <string_view>

namespace corio::net {

/// A socket address: IPv4, IPv6 or a Unix path.
struct address {
    sockaddr_storage storage{};
    socklen_t length = 0;

    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
    /// "127.0.0.1:8080", "[::1]:8080" or the Unix path.
    std::string to_string() const;
};

/// Parses a numeric IPv4 or IPv6 host and a port (EINVAL for anything else).
result<address> ip(std::string_view host, std::uint16_t port);
/// A Unix-domain socket path (ENAMETOOLONG if it does not fit).
result<address> unix_path(std::string_view path);

/// A listening stream socket bound to `addr` (port 0 picks one: see local_address), with
/// SO_REUSEADDR for IP. The caller owns the fd.
result<int> listen(const address& addr, int backlog = 128);
/// The address a socket is bound to (e.g. the port chosen for port 0).
result<address> local_address(int fd);
/// A stream socket connected to `addr`; the caller owns the fd.
task<result<int>> connect(address addr, std::stop_token stop = {});

}  // namespace corio::net
