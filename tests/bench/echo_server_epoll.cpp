// echo_server_epoll — the raw epoll baseline of bench=echo: an echo server written directly on
// epoll, as plainly as a careful engineer would, to measure corio against.
//
// One thread, non-blocking sockets, level-triggered epoll. A readable connection gets one
// recv() into its 16 KiB buffer and the data is sent back at once; what the socket does not
// take is kept, and the connection then waits for EPOLLOUT instead of EPOLLIN until it has
// all been sent (so a client that does not read cannot make the server buffer without bound).
// The listener accepts until EAGAIN on each readiness.
//
// Usage: echo_server_epoll [--port P]   (127.0.0.1; 0 = any free port, the default)
// The first line of output names the address, 127.0.0.1:<port>. SIGINT/SIGTERM arrive through
// a signalfd in the same epoll set; then every connection is closed and freed, and the program
// exits 0.
#include "echo_baseline.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_set>

namespace {

using echo_baseline::buffer_size;
constexpr int max_events = 256;

constexpr const char* program = "echo_server_epoll";

[[noreturn]] void die(const char* what, int err) {
    echo_baseline::die(program, what, err);
}

struct connection {
    explicit connection(int socket) : fd(socket) {}  // the buffer is left uninitialised
    int fd;
    std::size_t length = 0;  // bytes received and not yet all sent back
    std::size_t sent = 0;    // of which already sent
    char buffer[buffer_size];
};

struct server {
    int epfd = -1;
    int listener = -1;
    int sigfd = -1;
    // epoll_event.data.ptr: a connection, or the address of `listener` / `sigfd`.
    std::unordered_set<connection*> connections;

    void watch(int op, int fd, std::uint32_t events, void* ptr) {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = ptr;
        if (epoll_ctl(epfd, op, fd, &ev) < 0) die("epoll_ctl", errno);
    }

    void on_listener() {
        for (;;) {
            const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                    std::fprintf(stderr, "echo_server_epoll: accept: %s\n", std::strerror(errno));
                return;
            }
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto* c = new connection(fd);
            connections.insert(c);
            watch(EPOLL_CTL_ADD, fd, EPOLLIN, c);
        }
    }

    // Sends what is left of the buffer; false when the connection failed.
    bool flush(connection* c) {
        while (c->sent < c->length) {
            const ssize_t n = ::send(c->fd, c->buffer + c->sent, c->length - c->sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno == EAGAIN;
            }
            c->sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    void on_connection(connection* c, std::uint32_t events) {
        if (c->length > 0) {  // waiting for EPOLLOUT (or an error) to send the rest
            if (!flush(c)) return finish(c);
            if (c->sent == c->length) {
                c->length = 0;
                watch(EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
            }
            return;
        }
        if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
        const ssize_t n = ::recv(c->fd, c->buffer, buffer_size, 0);
        if (n <= 0) {  // EOF or an error
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            return finish(c);
        }
        c->length = static_cast<std::size_t>(n);
        c->sent = 0;
        if (!flush(c)) return finish(c);
        if (c->sent == c->length)
            c->length = 0;
        else
            watch(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);  // the socket is full: wait for room
    }

    void finish(connection* c) {
        ::close(c->fd);  // also removes it from the epoll set
        connections.erase(c);
        delete c;
    }

    void run() {
        epoll_event events[max_events];
        for (;;) {
            const int n = epoll_wait(epfd, events, max_events, -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                die("epoll_wait", errno);
            }
            for (int i = 0; i < n; ++i) {
                void* const ptr = events[i].data.ptr;
                if (ptr == &sigfd) return;
                if (ptr == &listener)
                    on_listener();
                else
                    on_connection(static_cast<connection*>(ptr), events[i].events);
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    const int port = echo_baseline::parse_port(argc, argv, program);

    server s;
    s.sigfd = echo_baseline::shutdown_signals(program, SFD_NONBLOCK);
    std::uint16_t bound = 0;
    s.listener = echo_baseline::listen_loopback(program, port, SOCK_NONBLOCK, bound);

    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s.epfd < 0) die("epoll_create1", errno);
    s.watch(EPOLL_CTL_ADD, s.listener, EPOLLIN, &s.listener);
    s.watch(EPOLL_CTL_ADD, s.sigfd, EPOLLIN, &s.sigfd);

    std::printf("echo_server_epoll on 127.0.0.1:%u (epoll)\n", bound);
    std::fflush(stdout);
    s.run();

    for (connection* c : s.connections) {
        ::close(c->fd);
        delete c;
    }
    ::close(s.epfd);
    ::close(s.listener);
    ::close(s.sigfd);
    return 0;
}
