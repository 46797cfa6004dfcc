// mt_echo — a multi-threaded echo server: the main context accepts, N io_threads serve.
//
// Each accepted connection is spawned onto the next io_thread's context (round-robin) and
// lives there. SIGINT/SIGTERM arrive through a signalfd that the main context awaits; then the
// acceptor stops, every connection is cancelled (its pending recv/write ends with ECANCELED)
// and closes its socket, the io_threads stop and join, and each thread's connection count is
// printed. See --help; with --port 0 the first line of output gives the port chosen.
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/spawn.hpp>
#include <corio/sync.hpp>
#include <corio/when_any.hpp>

#include <fmt/format.h>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <memory>
#include <span>
#include <stop_token>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct worker {
    corio::io_thread thread;
    std::atomic<int> connections{0};  // counted on the thread itself, read after join()
    explicit worker(int i) : thread(fmt::format("echo-{}", i)) {}
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
    std::array<std::byte, 65536> buf;
    for (;;) {  // until EOF, an error, or ECANCELED once shutdown has begun
        corio::result<std::size_t> n = co_await corio::recv(fd, buf);
        if (!n || *n == 0) break;
        if (!co_await corio::write_all(fd, std::span(buf).first(*n))) break;
    }
    // Not co_await corio::close(): a cancelled coroutine's operations end at once, unattempted.
    ::close(fd);
    count.drop();
}

corio::task<void> accept_loop(int listener, std::vector<std::unique_ptr<worker>>& workers,
                              connection_count& count, std::stop_token shutdown) {
    for (std::size_t next = 0;;) {
        corio::result<int> fd = co_await corio::accept(listener);
        if (!fd) {
            if (fd.error() == std::errc::operation_canceled) co_return;  // shutdown
            fmt::print(stderr, "accept: {}\n", fd.error().message());
            continue;
        }
        worker& w = *workers[next++ % workers.size()];
        count.add();
        corio::spawn(w.thread.get_context(), serve(*fd, w, count), "connection", shutdown);
    }
}

corio::task<int> next_signal(int sigfd) {
    for (;;) {
        if (!co_await corio::wait_readable(sigfd)) co_return 0;
        signalfd_siginfo info;
        if (read(sigfd, &info, sizeof info) == sizeof info)
            co_return static_cast<int>(info.ssi_signo);
    }
}

corio::task<void> run_server(int listener, int sigfd, std::vector<std::unique_ptr<worker>>& workers,
                             connection_count& count) {
    std::stop_source shutdown;
    // when_any: the signal wins (the acceptor never ends by itself), the acceptor is cancelled.
    co_await corio::when_any(accept_loop(listener, workers, count, shutdown.get_token()),
                             next_signal(sigfd));
    shutdown.request_stop();  // every connection's pending operation ends with ECANCELED
    count.drop();             // the acceptor's
    co_await count.all_closed.wait();
}

constexpr std::string_view usage =
    "usage: mt_echo [--threads N] [--port P]\n"
    "  --threads N  io_threads serving the connections (default: hardware concurrency)\n"
    "  --port P     port to listen on, on 127.0.0.1 (0: any free one; default 7777)\n";

bool parse(std::string_view text, int& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= 0;
}

}  // namespace

int main(int argc, char** argv) {
    int threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
    int port = 7777;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help") {
            fmt::print("{}", usage);
            return 0;
        }
        int* value = arg == "--threads" ? &threads : arg == "--port" ? &port : nullptr;
        if (!value || i + 1 == argc || !parse(argv[++i], *value) || threads < 1 || port > 65535) {
            fmt::print(stderr, "mt_echo: bad arguments (see --help)\n");
            return 2;
        }
    }
    // Blocked before any thread starts, so every thread inherits the mask: the signals are
    // only ever read from the signalfd.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    const int sigfd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
    corio::result<int> listener =
        corio::net::listen(corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value());
    if (sigfd < 0 || !listener) {
        fmt::print(stderr, "mt_echo: {}\n",
                   listener ? "signalfd failed" : listener.error().message());
        return 1;
    }
    corio::context ctx({.name = "main"});
    std::vector<std::unique_ptr<worker>> workers;
    for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<worker>(i));
    fmt::print("mt_echo on {} ({}, {} threads)\n",
               corio::net::local_address(*listener)->to_string(), corio::to_string(ctx.backend()),
               threads);
    std::fflush(stdout);

    connection_count count;
    corio::run(ctx, run_server(*listener, sigfd, workers, count));
    for (auto& w : workers) w->thread.stop();  // every connection has closed: nothing to drain
    for (auto& w : workers) w->thread.join();
    for (std::size_t i = 0; i < workers.size(); ++i) {
        fmt::print("thread {}: {} connections\n", i, workers[i]->connections.load());
    }
    close(*listener);
    close(sigfd);
    return 0;
}
