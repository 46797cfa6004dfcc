// echo_client — a load generator for echo servers: round trips per second and their latency.
//
// Opens --connections connections, spread round-robin over --threads io_threads, and once all
// are connected runs them for --duration seconds. Each connection sends --pipeline messages of
// --size bytes at once, then reads the echoes back and compares every byte: each message is a
// different slice of a random pattern, so a lost, repeated or reordered byte is caught. Nothing
// is allocated per message. The last line of output is a summary for scripts (see --help).
#include "common/fd_limit.hpp"
#include "common/flags.hpp"
#include "common/load_stats.hpp"
#include "common/message_pattern.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

/// One io_thread and what its connections measured (written on that thread only; read by main
/// once every connection's task has been joined).
struct lane {
    corio::io_thread thread;
    examples::load_stats stats;
    lane(int i, corio::context_options options)
        : thread(fmt::format("client-{}", i), std::move(options)) {}
};

struct load {
    std::size_t size, pipeline;
    examples::message_pattern pattern;
    steady::time_point deadline;
};

/// At most this many bytes are in flight on a connection (sent, not yet echoed): this much
/// always fits in the socket buffers, so sending a large batch cannot deadlock with a server
/// that blocks writing its echo while we block writing the rest.
constexpr std::size_t window = 32 * 1024;

corio::task<void> drive(int fd, int id, const load& l, lane& home) {
    const std::size_t batch = l.size * l.pipeline;
    const auto out = std::make_unique_for_overwrite<std::byte[]>(batch);
    const auto in = std::make_unique_for_overwrite<std::byte[]>(std::min(batch, window));
    auto fail = [&](std::string_view what) {
        fmt::print(stderr, "echo_client: connection {}: {}\n", id, what);
        ++home.stats.errors;
    };
    for (std::uint64_t message = 0;; message += l.pipeline) {
        for (std::size_t i = 0; i < l.pipeline; ++i)
            std::ranges::copy(l.pattern.message(id, message + i), &out[i * l.size]);
        const steady::time_point sent_at = steady::now();
        std::size_t sent = 0, received = 0;
        while (received < batch) {
            if (sent < batch && sent - received < window) {
                const std::size_t len = std::min(batch - sent, window - (sent - received));
                corio::result<std::size_t> n = co_await corio::send(fd, {&out[sent], len});
                if (!n) co_return fail(fmt::format("send: {}", n.error().message()));
                sent += *n;
                continue;
            }
            const std::size_t len = std::min(sent - received, window);
            corio::result<std::size_t> n = co_await corio::recv(fd, {in.get(), len});
            if (!n) co_return fail(fmt::format("recv: {}", n.error().message()));
            if (*n == 0) co_return fail("the server closed the connection");
            const std::byte* wrong = std::mismatch(in.get(), in.get() + *n, &out[received]).first;
            const std::size_t at = received + (wrong - in.get());
            if (at < received + *n)
                co_return fail(fmt::format("echo mismatch in message {} at byte {}",
                                           message + at / l.size, at % l.size));
            received += *n;  // every message completed by these bytes took this long
            home.stats.record(received / l.size - (received - *n) / l.size,
                              steady::now() - sent_at);
        }
        if (steady::now() >= l.deadline) co_return;
    }
}

struct options {
    std::string host = "127.0.0.1";
    int port = 7777, connections = 1, threads = 1;
    std::size_t size = 64, pipeline = 1;
    double duration = 3;
    corio::backend_kind backend = corio::backend_kind::automatic;
};

/// Connects every connection (all at once), then drives them until the deadline; the summary's
/// clock starts once the last one has connected. Returns the exit status.
corio::task<int> run_client(const options& o, std::vector<std::unique_ptr<lane>>& lanes,
                            const corio::net::address& server) {
    std::vector<corio::join_handle<corio::result<int>>> connecting;
    for (int i = 0; i < o.connections; ++i) {
        corio::context& ctx = lanes[i % lanes.size()]->thread.get_context();
        connecting.push_back(corio::spawn(ctx, corio::net::connect(server), "connect"));
    }
    std::vector<int> fds;
    std::error_code failure;
    for (auto& c : connecting) {
        corio::result<int> fd = co_await c;
        if (fd) fds.push_back(*fd);
        if (!fd && !failure) failure = fd.error();
    }
    if (failure) {
        fmt::print(stderr, "echo_client: connect to {}: {}\n", server.to_string(),
                   failure.message());
        for (int fd : fds) ::close(fd);
        co_return 1;
    }

    load l{o.size, o.pipeline, examples::message_pattern(o.size), {}};
    const steady::time_point start = steady::now();
    l.deadline = start + std::chrono::duration_cast<steady::duration>(
                             std::chrono::duration<double>(o.duration));
    std::vector<corio::join_handle<void>> running;
    for (int i = 0; i < o.connections; ++i) {
        const int one = 1;  // each message goes out at once, not when the previous is acknowledged
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        lane& home = *lanes[i % lanes.size()];
        running.push_back(corio::spawn(home.thread.get_context(), drive(fds[i], i, l, home)));
    }
    for (auto& r : running) co_await r;
    const std::chrono::duration<double> seconds = steady::now() - start;
    for (int fd : fds) ::close(fd);

    examples::load_stats all;
    for (auto& ln : lanes) all.merge(ln->stats);
    fmt::print("{} backend={} connections={} size={} pipeline={}\n", all.summary(seconds.count()),
               corio::to_string(lanes[0]->thread.get_context().backend()), o.connections, o.size,
               o.pipeline);
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
    options o;
    examples::flags flags("echo_client", usage);
    flags.text("--host", o.host, "a numeric IP address",
               [](std::string_view host) { return corio::net::ip(host, 0).ok(); });
    flags.number("--port", o.port, 1, 65535).number("--connections", o.connections, 1, 1'000'000);
    flags.number("--threads", o.threads, 1, 1024).number("--size", o.size, 1, 64 << 20);
    flags.number("--pipeline", o.pipeline, 1, 4096).number("--duration", o.duration, 0.001, 1e6);
    if (std::optional<int> status = flags.backend(o.backend).parse(argc, argv)) return *status;
    // Every connection is an fd; each thread's context a few more. Better to fail now than
    // after thousands of connections.
    const rlim_t needed = o.connections + 16 * o.threads + 64, limit = examples::raise_fd_limit();
    if (limit < needed) {
        fmt::print(stderr,
                   "echo_client: --connections {} needs about {} fds, but the hard limit is {}\n",
                   o.connections, needed, limit);
        return 1;
    }
    try {
        const corio::context_options context_options{.backend = o.backend, .name = "echo_client"};
        const corio::net::address server =
            corio::net::ip(o.host, static_cast<std::uint16_t>(o.port)).value();
        corio::context ctx(context_options);
        std::vector<std::unique_ptr<lane>> lanes;
        for (int i = 0; i < o.threads; ++i)
            lanes.push_back(std::make_unique<lane>(i, context_options));
        return corio::run(ctx, run_client(o, lanes, server));  // ~lane: stops and joins
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "echo_client: {}\n", e.what());
        return 1;
    }
}
