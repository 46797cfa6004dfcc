// echo_server_liburing — the raw io_uring baseline of bench=echo: an echo server written
// directly on liburing, as plainly as a careful engineer would, to measure corio against.
//
// One thread, one ring created with SINGLE_ISSUER | DEFER_TASKRUN (completions are processed
// only when this thread enters the kernel to wait, with no task-work interrupts; without them
// when the kernel refuses the flags). The listener is served by a multishot accept (a plain
// accept re-armed per connection on kernels without it). Each connection owns one 16 KiB
// buffer and has exactly one operation in flight: a recv, then a send of what it received
// (re-sent from where it stopped on a short send), then the next recv. The loop is
// io_uring_submit_and_wait(1): one system call submits everything queued and waits.
//
// Usage: echo_server_liburing [--port P]   (127.0.0.1; 0 = any free port, the default)
// The first line of output names the address, 127.0.0.1:<port>. SIGINT/SIGTERM arrive as a
// read on a signalfd; then every connection is shut down, the accept cancelled, the ring
// drained of its operations and everything freed, and the program exits 0.
#include "echo_baseline.hpp"

#include <liburing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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
constexpr unsigned ring_entries = 4096;

constexpr const char* program = "echo_server_liburing";

[[noreturn]] void die(const char* what, int err) {
    echo_baseline::die(program, what, err);
}

struct connection {
    explicit connection(int socket) : fd(socket) {}  // the buffer is left uninitialised
    int fd;
    std::size_t length = 0;  // bytes received, being echoed
    std::size_t sent = 0;    // of which already sent
    char buffer[buffer_size];
};

// user_data: a connection pointer, or one of these tags (connections are 8-byte aligned, so the
// small odd values never collide with them).
constexpr std::uint64_t accept_tag = 1;
constexpr std::uint64_t signal_tag = 3;
constexpr std::uint64_t cancel_tag = 5;

struct server {
    io_uring ring{};
    int listener = -1;
    int sigfd = -1;
    signalfd_siginfo siginfo{};
    bool multishot_accept = true;
    bool stopping = false;
    unsigned in_flight = 0;  // operations submitted whose final completion has not arrived
    std::unordered_set<connection*> connections;

    io_uring_sqe* sqe(std::uint64_t user_data) {
        io_uring_sqe* s = io_uring_get_sqe(&ring);
        if (!s) {  // the SQ is full: hand it to the kernel and take a fresh entry
            io_uring_submit(&ring);
            s = io_uring_get_sqe(&ring);
        }
        io_uring_sqe_set_data64(s, user_data);
        ++in_flight;
        return s;
    }

    void arm_accept() {
        io_uring_sqe* s = sqe(accept_tag);
        if (multishot_accept)
            io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, 0);
        else
            io_uring_prep_accept(s, listener, nullptr, nullptr, 0);
    }

    void recv(connection* c) {
        io_uring_prep_recv(sqe(reinterpret_cast<std::uintptr_t>(c)), c->fd, c->buffer, buffer_size,
                           0);
    }

    void send(connection* c) {
        io_uring_prep_send(sqe(reinterpret_cast<std::uintptr_t>(c)), c->fd, c->buffer + c->sent,
                           c->length - c->sent, MSG_NOSIGNAL);
    }

    void on_accept(const io_uring_cqe& cqe) {
        if (!(cqe.flags & IORING_CQE_F_MORE)) {
            --in_flight;  // the accept ended; re-armed below unless shutting down
            if (cqe.res == -EINVAL && multishot_accept) {
                multishot_accept = false;  // a kernel without multishot accept
                if (!stopping) arm_accept();
                return;
            }
            if (!stopping) arm_accept();
        }
        if (cqe.res < 0) {
            if (cqe.res != -ECANCELED)
                std::fprintf(stderr, "echo_server_liburing: accept: %s\n", std::strerror(-cqe.res));
            return;
        }
        if (stopping) {
            ::close(cqe.res);
            return;
        }
        const int one = 1;
        setsockopt(cqe.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* c = new connection(cqe.res);
        connections.insert(c);
        recv(c);
    }

    void on_connection(connection* c, int res) {
        --in_flight;
        if (c->length == 0) {  // a recv completed
            if (res <= 0) {    // EOF or an error (ECONNRESET, ...): the connection ends
                finish(c);
                return;
            }
            c->length = static_cast<std::size_t>(res);
            c->sent = 0;
            send(c);
            return;
        }
        if (res < 0) {  // EPIPE, ECONNRESET: the peer went away mid-echo
            finish(c);
            return;
        }
        c->sent += static_cast<std::size_t>(res);
        if (c->sent < c->length) {
            send(c);  // a short send: the rest
            return;
        }
        c->length = 0;
        recv(c);
    }

    void finish(connection* c) {
        ::close(c->fd);
        connections.erase(c);
        delete c;
    }

    void stop() {
        stopping = true;
        // Each connection has one recv or send in flight: shutting the socket down completes
        // it (a recv with 0, a send with EPIPE) and the connection finishes as on EOF.
        for (connection* c : connections) shutdown(c->fd, SHUT_RDWR);
        io_uring_prep_cancel64(sqe(cancel_tag), accept_tag, 0);
    }

    void run() {
        while (!stopping || in_flight > 0) {
            const int r = io_uring_submit_and_wait(&ring, 1);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) die("io_uring_enter", -r);
            unsigned head;
            unsigned seen = 0;
            io_uring_cqe* cqe;
            io_uring_for_each_cqe(&ring, head, cqe) {
                ++seen;
                const std::uint64_t tag = cqe->user_data;
                if (tag == accept_tag)
                    on_accept(*cqe);
                else if (tag == signal_tag || tag == cancel_tag) {
                    --in_flight;
                    if (tag == signal_tag && !stopping) stop();
                } else
                    on_connection(reinterpret_cast<connection*>(tag), cqe->res);
            }
            io_uring_cq_advance(&ring, seen);
        }
    }
};

}  // namespace

int main(int argc, char** argv) {
    const int port = echo_baseline::parse_port(argc, argv, program);

    server s;
    s.sigfd = echo_baseline::shutdown_signals(program, 0);
    std::uint16_t bound = 0;
    s.listener = echo_baseline::listen_loopback(program, port, 0, bound);

    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    const char* mode = "single_issuer+defer_taskrun";
    int r = io_uring_queue_init_params(ring_entries, &s.ring, &params);
    if (r == -EINVAL) {  // a kernel older than 6.1
        params = {};
        mode = "plain";
        r = io_uring_queue_init_params(ring_entries, &s.ring, &params);
    }
    if (r < 0) die("io_uring_queue_init", -r);

    std::printf("echo_server_liburing on 127.0.0.1:%u (io_uring, %s)\n", bound, mode);
    std::fflush(stdout);

    io_uring_prep_read(s.sqe(signal_tag), s.sigfd, &s.siginfo, sizeof s.siginfo, 0);
    s.arm_accept();
    s.run();

    io_uring_queue_exit(&s.ring);
    ::close(s.listener);
    ::close(s.sigfd);
    return 0;
}
