// Socket helpers (see net.hpp).
#include <corio/net.hpp>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

namespace corio::net {

std::string address::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    switch (storage.ss_family) {
        case AF_INET: {
            const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
            inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
            return fmt::format("{}:{}", text, ntohs(in->sin_port));
        }
        case AF_INET6: {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
            return fmt::format("[{}]:{}", text, ntohs(in6->sin6_port));
        }
        case AF_UNIX:
            return reinterpret_cast<const sockaddr_un*>(&storage)->sun_path;
        default:
            return "?";
    }
}

result<address> ip(std::string_view host, std::uint16_t port) {
    const std::string h(host);
    address a;
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    if (inet_pton(AF_INET, h.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        a.length = sizeof(sockaddr_in);
        return a;
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        a.length = sizeof(sockaddr_in6);
        return a;
    }
    return result<address>::from_errno(EINVAL);
}

result<address> unix_path(std::string_view path) {
    address a;
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
    if (path.empty() || path.size() >= sizeof un->sun_path) {
        return result<address>::from_errno(ENAMETOOLONG);
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, path.data(), path.size());
    a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return a;
}

namespace {

result<int> open_socket(const address& addr) {
    const int fd = ::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return result<int>::from_errno(errno);
    return fd;
}

}  // namespace

result<int> listen(const address& addr, int backlog) {
    auto fd = open_socket(addr);
    if (!fd) return fd;
    const int one = 1;
    if (addr.storage.ss_family != AF_UNIX) {
        ::setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (::bind(*fd, addr.get(), addr.length) < 0 || ::listen(*fd, backlog) < 0) {
        const int err = errno;
        ::close(*fd);
        return result<int>::from_errno(err);
    }
    return fd;
}

result<address> local_address(int fd) {
    address a;
    a.length = sizeof a.storage;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) < 0) {
        return result<address>::from_errno(errno);
    }
    return a;
}

task<result<int>> connect(address addr, std::stop_token stop) {
    auto fd = open_socket(addr);
    if (!fd) co_return fd;
    auto r = co_await corio::connect(*fd, addr.get(), addr.length, std::move(stop));
    if (!r) {
        ::close(*fd);
        co_return r.error();
    }
    co_return *fd;
}

}  // namespace corio::net
