// What the echo benchmark's baseline servers share: their command line (`[--port P]`), the
// shutdown signals (SIGINT, SIGTERM through a signalfd) and the listening socket on loopback.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace echo_baseline {

/// Each connection's buffer: the size examples/echo_server.cpp uses.
constexpr std::size_t buffer_size = 16 * 1024;

[[noreturn]] inline void die(const char* program, const char* what, int err) {
    std::fprintf(stderr, "%s: %s: %s\n", program, what, std::strerror(err));
    std::exit(1);
}

/// The port of `[--port P]` (default 0: any free one); --help prints the usage and exits 0,
/// anything else exits 2.
inline int parse_port(int argc, char** argv, const char* program) {
    int port = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help") {
            std::printf("usage: %s [--port P]\n", program);
            std::exit(0);
        }
        char* end = nullptr;
        if (arg != "--port" || i + 1 == argc ||
            (port = static_cast<int>(std::strtol(argv[++i], &end, 10)), *end != '\0') || port < 0 ||
            port > 65535) {
            std::fprintf(stderr, "%s: bad arguments (see --help)\n", program);
            std::exit(2);
        }
    }
    return port;
}

/// Blocks SIGINT and SIGTERM and returns a signalfd that reads them (`flags`: SFD_*).
inline int shutdown_signals(const char* program, int flags) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    const int fd = signalfd(-1, &signals, flags | SFD_CLOEXEC);
    if (fd < 0) die(program, "signalfd", errno);
    return fd;
}

/// A TCP socket listening on 127.0.0.1:`port` (SO_REUSEADDR, SOMAXCONN backlog); `type_flags`
/// are SOCK_* flags; the port bound is stored in `bound`.
inline int listen_loopback(const char* program, int port, int type_flags, std::uint16_t& bound) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
    if (fd < 0) die(program, "socket", errno);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die(program, "bind", errno);
    if (listen(fd, SOMAXCONN) < 0) die(program, "listen", errno);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    bound = ntohs(addr.sin_port);
    return fd;
}

}  // namespace echo_baseline
