// echo_server — a TCP echo server: an accept loop and one coroutine per connection.
//
// With --threads N > 1 the main context accepts and each connection is spawned onto the next of
// N io_threads, round-robin. A client that vanishes mid-write is an EPIPE or ECONNRESET from send
// (never SIGPIPE), a half-close a recv of 0 once all was echoed. SIGINT/SIGTERM stop the acceptor
// and cancel every connection (ECANCELED); then each thread's connection count is printed.
#include "common/accept_backoff.hpp"
#include "common/connection_count.hpp"
#include "common/fd_limit.hpp"
#include "common/flags.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/when_any.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace {

/// Where connections are served: an io_thread's context, or (--threads 1) the main one.
struct worker {
    std::optional<corio::io_thread> thread;
    corio::context* ctx;
    std::atomic<int> connections{0};  // counted on the worker's thread, read once it ended
};

corio::task<void> serve(int fd, worker& self, examples::connection_count& count) {
    self.connections.fetch_add(1, std::memory_order_relaxed);
    // 16 KiB: one recv takes a typical message whole, and 10k idle connections cost 160 MiB
    // of address space but little memory (only the bytes received touch pages).
    std::array<std::byte, 16384> buf;
    for (bool open = true; open;) {  // until EOF, an error, or ECANCELED once shutdown has begun
        corio::result<std::size_t> n = co_await corio::recv(fd, buf);
        open = n && *n > 0;
        for (std::size_t sent = 0; open && sent < *n;) {
            corio::result<std::size_t> m =
                co_await corio::send(fd, std::span(buf).subspan(sent, *n - sent));
            open = bool(m);
            if (m) sent += *m;
        }
    }
    ::close(fd);  // a plain close(2): it does not block, so there is nothing to await
    count.drop();
}

corio::task<void> accept_loop(int listener, std::vector<std::unique_ptr<worker>>& workers,
                              examples::connection_count& count, std::stop_token shutdown) {
    examples::accept_backoff backoff;  // out of fds: open connections are still served
    for (std::size_t next = 0;;) {
        corio::result<int> fd = co_await corio::accept(listener);
        if (!fd) {
            // An errno value, compared and printed without calling into std::error_category:
            // out of fds, even a sanitizer's check of that virtual call would fail.
            const int err = fd.error().value();
            if (err == ECANCELED) co_return;  // shutdown
            if (!backoff.shortage(err)) {
                fmt::print(stderr, "echo_server: accept: {}\n", std::strerror(err));
                continue;
            }
            if (backoff.idle())
                fmt::print(stderr, "echo_server: accept: {}: backing off\n", std::strerror(err));
            if (!co_await corio::sleep_for(backoff.next())) co_return;  // shutdown
            continue;
        }
        if (backoff.recovered()) fmt::print(stderr, "echo_server: accepting again\n");
        const int one = 1;  // echo at once, without waiting for the previous echo's ACK
        setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        worker& w = *workers[next++ % workers.size()];
        count.add();
        corio::spawn(*w.ctx, serve(*fd, w, count), "connection", shutdown);
    }
}

corio::task<void> run_server(int listener, corio::signal_set& signals,
                             std::vector<std::unique_ptr<worker>>& workers,
                             examples::connection_count& count) {
    std::stop_source shutdown;
    // when_any: the signal wins (the acceptor never ends by itself), the acceptor is cancelled.
    co_await corio::when_any(accept_loop(listener, workers, count, shutdown.get_token()),
                             signals.wait());
    shutdown.request_stop();  // every connection's pending operation ends with ECANCELED
    count.drop();             // the acceptor's
    co_await count.all_closed.wait();
}

constexpr std::string_view usage =
    "usage: echo_server [--port P] [--threads N] [--backend auto|io_uring|epoll|poll]\n"
    "  --port P     on 127.0.0.1 (0: any free one; default 7777)\n"
    "  --threads N  1 (default): the accepting thread serves; N > 1: N io_threads do\n";

}  // namespace

int main(int argc, char** argv) {
    int port = 7777, threads = 1;
    corio::backend_kind backend = corio::backend_kind::automatic;
    examples::flags flags("echo_server", usage);
    flags.number("--port", port, 0, 65535).number("--threads", threads, 1, 1024).backend(backend);
    if (std::optional<int> status = flags.parse(argc, argv)) return *status;
    const rlim_t fd_limit = examples::raise_fd_limit();  // every connection is an fd
    try {
        // First, so that every thread started later inherits the blocked signals.
        corio::signal_set signals{SIGINT, SIGTERM};
        const corio::context_options options{.backend = backend, .name = "echo_server"};
        corio::context ctx(options);
        std::vector<std::unique_ptr<worker>> workers;
        for (int i = 0; i < threads; ++i) {
            worker& w = *workers.emplace_back(std::make_unique<worker>());
            w.ctx = threads == 1
                        ? &ctx
                        : &w.thread.emplace(fmt::format("echo-{}", i), options).get_context();
        }
        const auto address = corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value();
        corio::result<int> listener = corio::net::listen(address, SOMAXCONN);
        if (!listener) {
            fmt::print(stderr, "echo_server: listen on {}: {}\n", address.to_string(),
                       listener.error().message());
            return 1;
        }
        fmt::print("echo_server on {} ({}, {} thread{}, fd limit {})\n",
                   corio::net::local_address(*listener)->to_string(),
                   corio::to_string(ctx.backend()), threads, threads == 1 ? "" : "s", fd_limit);
        std::fflush(stdout);
        examples::connection_count count;
        corio::run(ctx, run_server(*listener, signals, workers, count));
        for (std::size_t i = 0; i < workers.size(); ++i) {
            workers[i]->thread.reset();  // stops and joins it: every connection has closed
            fmt::print("thread {}: {} connections\n", i, workers[i]->connections.load());
        }
        ::close(*listener);
        return 0;
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "echo_server: {}\n", e.what());
        return 1;
    }
}
