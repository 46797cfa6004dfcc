// echo_client — a load generator for echo servers: round trips per second and their latency.
//
// Opens --connections TCP connections, spread round-robin over --threads io_threads, and once
// all are connected runs them for --duration seconds. Each connection keeps --pipeline messages
// of --size bytes in flight: it sends them, reads the echo back and compares every byte. Every
// message is a different slice of a random pattern (chosen by connection and message number),
// so a lost, repeated or reordered byte is caught. One message echoed is one round trip; its
// latency (sent → last byte back) goes into a fixed-size histogram of the thread. Nothing is
// allocated per message. The last line of output is a summary for scripts:
//   roundtrips=N seconds=S rt_per_s=R p50_us=X p99_us=X p999_us=X errors=E backend=B ...
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/net.hpp>
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
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

/// Latencies in ns: exact below 256 ns, above that 128 buckets per power of two, so a bucket is
/// at most 1/128 (0.8%) of its values wide. Fixed size: recording never allocates.
class histogram {
public:
    void record(std::uint64_t ns) noexcept { ++counts_[index(ns)], ++total_; }
    void merge(const histogram& other) noexcept {
        for (std::size_t i = 0; i < buckets; ++i) counts_[i] += other.counts_[i];
        total_ += other.total_;
    }
    /// The value below which a fraction `q` of the recordings lie (the middle of its bucket).
    double quantile(double q) const noexcept {
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets; ++i) {
            seen += counts_[i];
            if (seen > rank) return static_cast<double>(lower(i)) + width(i) / 2.0;
        }
        return 0;
    }

private:
    static constexpr int sub_bits = 7;
    static constexpr std::uint64_t linear = 2 << sub_bits, sub = 1 << sub_bits;
    static constexpr std::size_t buckets = linear + (64 - sub_bits - 1) * sub;

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < linear) return v;
        const int shift = std::bit_width(v) - (sub_bits + 1);  // v >> shift is in [sub, 2 sub)
        return linear + (shift - 1) * sub + ((v >> shift) - sub);
    }
    static std::uint64_t lower(std::size_t i) noexcept {
        if (i < linear) return i;
        const std::size_t shift = (i - linear) / sub + 1;
        return ((i - linear) % sub + sub) << shift;
    }
    static double width(std::size_t i) noexcept {
        return i < linear ? 1.0 : static_cast<double>(std::uint64_t{1} << ((i - linear) / sub + 1));
    }

    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t total_ = 0;
};

/// One io_thread and the results of its connections (written on that thread only; read by
/// main once every connection's task has been joined).
struct lane {
    corio::io_thread thread;
    histogram latency;
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

    histogram latency;
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

template <class T>
bool parse(std::string_view text, T& out, T min, T max) {
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

/// Parses the command line into `o`; false (after a message) on a bad flag or value.
bool parse_options(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 == argc) {
            fmt::print(stderr, "echo_client: {}: {}\n", flag,
                       flag.starts_with("--") ? "missing value" : "unexpected argument");
            return false;
        }
        const std::string_view value = argv[++i];
        bool ok;
        if (flag == "--host") {
            ok = bool(corio::net::ip(value, 0));
            o.host = value;
        } else if (flag == "--port") {
            ok = parse(value, o.port, 1, 65535);
        } else if (flag == "--connections") {
            ok = parse(value, o.connections, 1, 1'000'000);
        } else if (flag == "--threads") {
            ok = parse(value, o.threads, 1, 1024);
        } else if (flag == "--size") {
            ok = parse<std::size_t>(value, o.size, 1, 64 << 20);
        } else if (flag == "--pipeline") {
            ok = parse<std::size_t>(value, o.pipeline, 1, 4096);
        } else if (flag == "--duration") {
            ok = parse(value, o.duration, 0.001, 1e6);
        } else if (flag == "--backend") {
            ok = parse_backend(value, o.backend);
        } else {
            fmt::print(stderr, "echo_client: unknown option {} (see --help)\n", flag);
            return false;
        }
        if (!ok) {
            fmt::print(stderr, "echo_client: bad value for {}: '{}' (see --help)\n", flag, value);
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--help") {
            fmt::print("{}", usage);
            return 0;
        }
    }
    options o;
    if (!parse_options(argc, argv, o)) return 2;
    // Many connections need many fds: take all the hard limit allows.
    rlimit fds{};
    if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
        fds.rlim_cur = fds.rlim_max;
        setrlimit(RLIMIT_NOFILE, &fds);
    }

    const corio::context_options context_options{.backend = o.backend, .name = "echo_client"};
    const corio::net::address server =
        corio::net::ip(o.host, static_cast<std::uint16_t>(o.port)).value();
    corio::context ctx(context_options);
    std::vector<std::unique_ptr<lane>> lanes;
    for (int i = 0; i < o.threads; ++i) lanes.push_back(std::make_unique<lane>(i, context_options));
    const int status = corio::run(ctx, run_client(o, lanes, server));
    lanes.clear();  // stops and joins the io_threads
    return status;
}
