// echo_server — a TCP echo server: an accept loop and one coroutine per connection.
//
// The main context accepts. With --threads 1 it also serves every connection; with N > 1 each
// accepted connection is spawned onto the next of N io_threads (round-robin) and lives there.
// A connection's round trip is one recv and one send, into a buffer in its coroutine frame:
// nothing is allocated per message. What a server must survive:
// - a client that vanishes mid-write: send fails with EPIPE/ECONNRESET (corio::send passes
//   MSG_NOSIGNAL, so no SIGPIPE) and the connection is closed;
// - a half-close: recv returns 0 once everything sent before it has been echoed;
// - running out of fds: the soft RLIMIT_NOFILE is raised to the hard limit at start, and when
//   accept still fails with EMFILE/ENFILE the acceptor backs off (1 ms, doubling up to 100 ms)
//   while the open connections go on being served, and accepts again once some have closed.
// SIGINT/SIGTERM (a corio::signal_set) stop the acceptor and cancel every connection (its
// pending recv/send ends with ECANCELED); then the io_threads join and each thread's
// connection count is printed. See --help; the first line of output gives the address.
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/sync.hpp>
#include <corio/when_any.hpp>

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;

/// Where connections are served: an io_thread's context, or (--threads 1) the main one.
struct worker {
    std::optional<corio::io_thread> thread;
    corio::context* ctx;
    std::atomic<int> connections{0};  // counted on the worker's thread, read after join()
};

/// Open connections, plus one for the acceptor while it runs: whoever drops the last one
/// sets `all_closed`, which shutdown awaits (from any thread: connections end on theirs).
/// Destroyed only after the io_threads have joined: the last drop() may still be inside set()
/// when the waiter resumes.
struct connection_count {
    std::atomic<int> open{1};
    corio::co_event all_closed;
    void add() { open.fetch_add(1, std::memory_order_relaxed); }
    void drop() {
        if (open.fetch_sub(1, std::memory_order_acq_rel) == 1) all_closed.set();
    }
};

corio::task<void> serve(int fd, worker& self, connection_count& count) {
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
    // Not co_await corio::close(): a cancelled coroutine's operations end at once, unattempted.
    ::close(fd);
    count.drop();
}

bool out_of_fds(std::error_code e) {
    return e == std::errc::too_many_files_open || e == std::errc::too_many_files_open_in_system ||
           e == std::errc::no_buffer_space || e == std::errc::not_enough_memory;
}

corio::task<void> accept_loop(int listener, std::vector<std::unique_ptr<worker>>& workers,
                              connection_count& count, std::stop_token shutdown) {
    std::chrono::milliseconds backoff{0};  // non-zero while accept runs out of fds
    for (std::size_t next = 0;;) {
        corio::result<int> fd = co_await corio::accept(listener);
        if (!fd && out_of_fds(fd.error())) {
            // The pending connection stays in the backlog; retrying at once would spin.
            if (backoff == 0ms) {
                fmt::print(stderr, "echo_server: accept: {}: backing off\n", fd.error().message());
            }
            backoff = std::min(std::max(2 * backoff, 1ms), 100ms);
            if (!co_await corio::sleep_for(backoff)) co_return;  // shutdown
            continue;
        }
        if (!fd) {
            if (fd.error() == std::errc::operation_canceled) co_return;  // shutdown
            fmt::print(stderr, "echo_server: accept: {}\n", fd.error().message());
            continue;  // e.g. ECONNABORTED: that client gave up; the next one is fine
        }
        if (backoff > 0ms) {
            fmt::print(stderr, "echo_server: accepting again\n");
            backoff = 0ms;
        }
        const int one = 1;  // echo at once, without waiting for the previous echo's ACK
        setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        worker& w = *workers[next++ % workers.size()];
        count.add();
        corio::spawn(*w.ctx, serve(*fd, w, count), "connection", shutdown);
    }
}

corio::task<void> run_server(int listener, corio::signal_set& signals,
                             std::vector<std::unique_ptr<worker>>& workers,
                             connection_count& count) {
    std::stop_source shutdown;
    // when_any: the signal wins (the acceptor never ends by itself), the acceptor is cancelled.
    co_await corio::when_any(accept_loop(listener, workers, count, shutdown.get_token()),
                             signals.wait());
    shutdown.request_stop();  // every connection's pending operation ends with ECANCELED
    count.drop();             // the acceptor's
    co_await count.all_closed.wait();
}

constexpr std::string_view usage =
    "usage: echo_server [--port P] [--threads N] [--backend B]\n"
    "  --port P     port to listen on, on 127.0.0.1 (0: any free one; default 7777)\n"
    "  --threads N  1 (default): one thread accepts and serves; N > 1: the main thread accepts\n"
    "               and N io_threads serve the connections, round-robin\n"
    "  --backend B  auto, io_uring, epoll or poll (default auto: CORIO_BACKEND, else the best\n"
    "               available)\n"
    "Stops on SIGINT or SIGTERM, printing how many connections each thread served.\n";

bool parse(std::string_view text, int& out, int min, int max) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= min && out <= max;
}

bool parse_backend(std::string_view text, corio::backend_kind& out) {
    for (auto kind : {corio::backend_kind::automatic, corio::backend_kind::io_uring,
                      corio::backend_kind::epoll, corio::backend_kind::poll}) {
        if (text == corio::to_string(kind)) return out = kind, true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    int port = 7777;
    int threads = 1;
    corio::backend_kind backend = corio::backend_kind::automatic;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help") {
            fmt::print("{}", usage);
            return 0;
        }
        const std::string_view value = i + 1 < argc ? argv[++i] : "";
        const bool ok = flag == "--port"      ? parse(value, port, 0, 65535)
                        : flag == "--threads" ? parse(value, threads, 1, 1024)
                        : flag == "--backend" ? parse_backend(value, backend)
                                              : false;
        if (!ok) {
            fmt::print(stderr, "echo_server: bad argument {} '{}' (see --help)\n", flag, value);
            return 2;
        }
    }
    // Every connection is an fd: take all the hard limit allows.
    rlimit fds{};
    getrlimit(RLIMIT_NOFILE, &fds);
    fds.rlim_cur = fds.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fds);
    getrlimit(RLIMIT_NOFILE, &fds);  // what we got (an infinite hard limit cannot be had)

    // First, so that every thread started later inherits the blocked signals.
    corio::signal_set signals{SIGINT, SIGTERM};
    const corio::net::address address =
        corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value();
    corio::result<int> listener = corio::net::listen(address, SOMAXCONN);
    if (!listener) {
        fmt::print(stderr, "echo_server: listen on {}: {}\n", address.to_string(),
                   listener.error().message());
        return 1;
    }
    const corio::context_options options{.backend = backend, .name = "echo_server"};
    corio::context ctx(options);
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < threads; ++i) {
        auto& w = *workers.emplace_back(std::make_unique<worker>());
        if (threads == 1) {
            w.ctx = &ctx;
        } else {
            w.ctx = &w.thread.emplace(fmt::format("echo-{}", i), options).get_context();
        }
    }
    fmt::print("echo_server on {} ({}, {} thread{}, fd limit {})\n",
               corio::net::local_address(*listener)->to_string(), corio::to_string(ctx.backend()),
               threads, threads == 1 ? "" : "s", fds.rlim_cur);
    std::fflush(stdout);

    connection_count count;
    corio::run(ctx, run_server(*listener, signals, workers, count));
    for (auto& w : workers) {
        if (w->thread) w->thread->stop();  // every connection has closed: nothing to drain
    }
    for (std::size_t i = 0; i < workers.size(); ++i) {
        if (workers[i]->thread) workers[i]->thread->join();
        fmt::print("thread {}: {} connections\n", i, workers[i]->connections.load());
    }
    ::close(*listener);
    return 0;
}
