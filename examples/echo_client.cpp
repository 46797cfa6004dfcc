// echo_client — a load generator for echo servers: round trips per second and their latency.
//
// Opens --connections TCP connections, spread round-robin over --threads io_threads, and once
// all are connected runs them for --duration seconds. Each connection sends --pipeline messages
// of --size bytes at once, reads the echoes back comparing every byte, and repeats. Every
// message is a different slice of a random pattern (chosen by connection and message number),
// so a lost, repeated or reordered byte is caught. One message echoed is one round trip; its
// latency (from sending its batch to its last byte back) goes into a fixed-size histogram of
// the thread. Nothing is allocated per message. The last line of output is a summary for scripts:
//   roundtrips=N seconds=S rt_per_s=R p50_us=X p99_us=X p999_us=X errors=E backend=B ...
#include "common/fd_limit.hpp"
#include "common/flags.hpp"
#include "common/histogram.hpp"

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
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

/// One io_thread and the results of its connections (written on that thread only; read by
/// main once every connection's task has been joined).
struct lane {
    corio::io_thread thread;
    examples::histogram latency;
    std::uint64_t roundtrips = 0;
    int errors = 0;
    lane(int i, corio::context_options options)
        : thread(fmt::format("client-{}", i), std::move(options)) {}
};

struct load {
    std::size_t size = 64;
    std::size_t pipeline = 1;
    std::vector<std::byte> pattern;  // size + 256 random bytes; message m starts at offset(m)
    steady::time_point deadline{};
};

/// At most this many bytes are in flight on a connection (sent, not yet echoed): this much
/// always fits in the socket buffers, so sending a large batch cannot deadlock with a server
/// that blocks writing its echo while we block writing the rest.
constexpr std::size_t window = 32 * 1024;

std::size_t offset(int connection, std::uint64_t message) {
    return (static_cast<std::uint64_t>(connection) * 37 + message * 101) % 251;
}

corio::task<void> drive(int fd, int id, const load& l, lane& home) {
    const std::size_t batch = l.size * l.pipeline;
    const auto out = std::make_unique_for_overwrite<std::byte[]>(batch);
    const auto in = std::make_unique_for_overwrite<std::byte[]>(std::min(batch, window));
    auto fail = [&](std::string_view what) {
        fmt::print(stderr, "echo_client: connection {}: {}\n", id, what);
        ++home.errors;
    };
    for (std::uint64_t message = 0;; message += l.pipeline) {
        for (std::size_t i = 0; i < l.pipeline; ++i)
            std::memcpy(&out[i * l.size], &l.pattern[offset(id, message + i)], l.size);
        const steady::time_point sent_at = steady::now();
        steady::time_point now = sent_at;
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
            now = steady::now();
            if (std::memcmp(in.get(), &out[received], *n) != 0) {
                std::size_t at = 0;
                while (in[at] == out[received + at]) ++at;
                at += received;
                co_return fail(fmt::format("echo mismatch in message {} at byte {}",
                                           message + at / l.size, at % l.size));
            }
            const auto ns = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at).count());
            const std::size_t complete_before = received / l.size;
            received += *n;
            for (std::size_t m = complete_before; m < received / l.size; ++m)
                home.latency.record(ns);
        }
        home.roundtrips += l.pipeline;
        if (now >= l.deadline) co_return;
    }
}

struct options {
    std::string host = "127.0.0.1";
    int port = 7777;
    int connections = 1;
    int threads = 1;
    std::size_t size = 64;
    std::size_t pipeline = 1;
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

    load l{.size = o.size,
           .pipeline = o.pipeline,
           .pattern = std::vector<std::byte>(o.size + 256),
           .deadline = {}};
    std::mt19937 random(42);
    for (std::byte& b : l.pattern) b = static_cast<std::byte>(random());
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

    examples::histogram latency;
    std::uint64_t roundtrips = 0;
    int errors = 0;
    for (auto& ln : lanes) {
        latency.merge(ln->latency);
        roundtrips += ln->roundtrips;
        errors += ln->errors;
    }
    fmt::print(
        "roundtrips={} seconds={:.3f} rt_per_s={:.0f} p50_us={:.1f} p99_us={:.1f} p999_us={:.1f} "
        "errors={} backend={} connections={} size={} pipeline={}\n",
        roundtrips, seconds.count(), static_cast<double>(roundtrips) / seconds.count(),
        latency.quantile(0.5) / 1e3, latency.quantile(0.99) / 1e3, latency.quantile(0.999) / 1e3,
        errors, corio::to_string(lanes[0]->thread.get_context().backend()), o.connections, o.size,
        o.pipeline);
    co_return errors ? 1 : 0;
}

constexpr std::string_view usage =
    "usage: echo_client [options]\n"
    "  --host A          the server's numeric address (default 127.0.0.1)\n"
    "  --port P          the server's port (default 7777)\n"
    "  --connections N   concurrent connections (default 1)\n"
    "  --size BYTES      bytes per message (default 64)\n"
    "  --pipeline K      messages in flight per connection (default 1)\n"
    "  --duration S      seconds to run once all are connected (default 3; fractions allowed)\n"
    "  --threads T       io_threads the connections are spread over (default 1)\n"
    "  --backend B       auto, io_uring, epoll or poll (default auto: CORIO_BACKEND, else the\n"
    "                    best available)\n"
    "Prints one line: roundtrips= seconds= rt_per_s= p50_us= p99_us= p999_us= errors= backend=\n"
    "connections= size= pipeline=. Exit status 1 if a connection failed or an echo was wrong.\n";

}  // namespace

int main(int argc, char** argv) {
    options o;
    examples::flags flags("echo_client", usage);
    flags.text("--host", o.host, "a numeric IP address",
               [](std::string_view host) { return corio::net::ip(host, 0).ok(); });
    flags.number("--port", o.port, 1, 65535).number("--connections", o.connections, 1, 1'000'000);
    flags.number("--threads", o.threads, 1, 1024).number("--size", o.size, 1, 64 << 20);
    flags.number("--pipeline", o.pipeline, 1, 4096).number("--duration", o.duration, 0.001, 1e6);
    flags.backend(o.backend);
    if (std::optional<int> status = flags.parse(argc, argv)) return *status;
    // Every connection is an fd; each thread's context a few more. Better to fail now than
    // after thousands of connections.
    const rlim_t needed = o.connections + 16 * o.threads + 64, limit = examples::raise_fd_limit();
    if (limit < needed) {
        fmt::print(stderr,
                   "echo_client: --connections {} needs about {} fds, but the hard limit is {} "
                   "(raise it, e.g. `ulimit -Hn` as root, or use fewer connections)\n",
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
