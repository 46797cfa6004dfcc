// echo_client — a load generator for echo servers: round trips per second and their latency.
// --connections connections, spread round-robin over --threads io_threads, run for --duration
// seconds once all are connected. Each sends --pipeline messages of --size bytes at once, then
// reads the echoes back and compares every byte (each message is a different slice of a random
// pattern). Nothing is allocated per message; the last line of output is a summary for scripts.
#include "common/echo_exchange.hpp"
#include "common/fd_limit.hpp"
#include "common/flags.hpp"
#include "common/load_stats.hpp"
#include "common/message_pattern.hpp"
#include "common/sockets.hpp"

#include <fmt/format.h>
#include <corio/co_event.hpp>
#include <corio/error.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/spawn.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <string>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

/// An io_thread and what its connections measured (read once they have all been joined).
struct lane {
    corio::io_thread thread;
    examples::load_stats stats;
    lane(int i, corio::context_options options)
        : thread(fmt::format("client-{}", i), std::move(options)) {}
};

/// The command line, and what the connections share. The clock starts once every connection is
/// up: the last one to connect sets `start`, then `go`, which all await before their first message.
struct load {
    std::string host = "127.0.0.1";
    int port = 7777, connections = 1, threads = 1;
    std::size_t size = 64, pipeline = 1;
    double duration = 3;
    corio::backend_kind backend = corio::backend_kind::automatic;
    std::atomic<int> connecting;      // the connections still connecting
    std::atomic<bool> failed{false};  // one could not connect: none runs
    corio::co_event go;
    steady::time_point start;
};

/// Runs batches of --pipeline messages until the deadline; every byte is checked as it comes back.
corio::task<void> drive(int fd, int id, const load& l, lane& home) {
    const examples::message_pattern pattern(l.size);
    std::vector<std::byte> out(l.size * l.pipeline),
        in(std::min(out.size(), examples::echo_window));
    examples::no_delay(fd);  // each message goes out at once, not once the last is acknowledged
    for (std::uint64_t message = 0;; message += l.pipeline) {
        pattern.fill(out, id, message);
        const steady::time_point sent_at = steady::now();
        auto echoed = [&](std::size_t at, std::span<const std::byte> echo) {
            const auto wrong = std::ranges::mismatch(echo, std::span(out).subspan(at)).in1;
            if (const std::size_t i = at + (wrong - echo.begin()); wrong != echo.end())
                return fmt::format("echo mismatch in message {} at byte {}", message + i / l.size,
                                   i % l.size);
            // Every message these bytes complete took this long.
            home.stats.record((at + echo.size()) / l.size - at / l.size, steady::now() - sent_at);
            return std::string();
        };
        if (const std::string error = co_await examples::echo_exchange(fd, out, in, echoed);
            !error.empty()) {
            ++home.stats.errors;
            co_return fmt::print(stderr, "echo_client: connection {}: {}\n", id, error);
        }
        if (steady::now() - l.start >= std::chrono::duration<double>(l.duration)) co_return;
    }
}

/// One connection, on its lane's thread: connects, waits until every connection has, then runs.
corio::task<void> connection(int id, const corio::net::address& server, load& l, lane& home) {
    corio::result<int> fd = co_await corio::net::connect(server);
    if (!fd && !l.failed.exchange(true))  // said once, not once per connection
        fmt::print(stderr, "echo_client: connect to {}: {}\n", server.to_string(),
                   fd.error().message());
    if (l.connecting.fetch_sub(1) == 1) {  // the last one: the measurement starts
        l.start = steady::now();
        l.go.set();
    }
    co_await l.go.wait();
    if (fd && !l.failed) co_await drive(*fd, id, l, home);
    if (fd) ::close(*fd);
}

/// Runs every connection, then prints the summary. Returns the exit status.
corio::task<int> run_client(load& l, std::deque<lane>& lanes) {
    const corio::net::address server = corio::net::ip(l.host, l.port).value();
    l.connecting = l.connections;
    std::vector<corio::join_handle<void>> running;
    for (int i = 0; i < l.connections; ++i) {
        lane& home = lanes[i % lanes.size()];
        running.push_back(corio::spawn(home.thread.get_context(), connection(i, server, l, home)));
    }
    for (auto& r : running) co_await r;
    if (l.failed) co_return 1;
    const std::chrono::duration<double> seconds = steady::now() - l.start;
    examples::load_stats all;
    for (const lane& ln : lanes) all.merge(ln.stats);
    fmt::print("{} backend={} connections={} size={} pipeline={}\n", all.summary(seconds.count()),
               corio::to_string(lanes[0].thread.get_context().backend()), l.connections, l.size,
               l.pipeline);
    co_return all.errors ? 1 : 0;
}

constexpr std::string_view usage =
    "usage: echo_client [--host A] [--port P] [--connections N] [--size BYTES] [--pipeline K]\n"
    "                   [--duration S] [--threads T] [--backend auto|io_uring|epoll|poll]\n"
    "Defaults: 127.0.0.1 (a numeric address), 7777, 1, 64, 1, 3 s, 1 thread. Prints one line:\n"
    "roundtrips= seconds= rt_per_s= p50_us= p99_us= p999_us= errors= backend= connections= size=\n"
    "pipeline=. Exit status 1 if a connection failed or an echo was wrong.\n";

}  // namespace

int main(int argc, char** argv) {
    load l;
    examples::flags flags("echo_client", usage);
    flags.text("--host", l.host, "a numeric IP address",
               [](std::string_view host) { return corio::net::ip(host, 0).ok(); });
    flags.number("--port", l.port, 1, 65535).number("--connections", l.connections, 1, 1'000'000);
    flags.number("--threads", l.threads, 1, 1024).number("--size", l.size, 1, 64 << 20);
    flags.number("--pipeline", l.pipeline, 1, 4096).number("--duration", l.duration, 0.001, 1e6);
    if (std::optional<int> status = flags.backend(l.backend).parse(argc, argv)) return *status;
    // Every connection is an fd; each thread's context a few more.
    if (!examples::enough_fds("echo_client", l.connections, l.connections + 16 * l.threads + 64))
        return 1;
    try {
        const corio::context_options options{.backend = l.backend, .name = "echo_client"};
        corio::context ctx(options);
        std::deque<lane> lanes;
        for (int i = 0; i < l.threads; ++i) lanes.emplace_back(i, options);
        return corio::run(ctx, run_client(l, lanes));  // ~lane: stops and joins
    } catch (const corio::error& e) {                  // e.g. a backend this machine refuses
        fmt::print(stderr, "echo_client: {}\n", e.what());
        return 1;
    }
}
