// bench=wakeup — waking a loop from another thread: round-trip latency (ns) and throughput of
// cross-thread bottom-half schedules (wakeups/s), against raw eventfd + epoll and a spin loop.
//
//  - corio-<backend>_<polling>_latency: the home thread of a context runs poll(true); a pinger
//    thread calls bottom_half::schedule() and spins until the BH's callback has stored the
//    round's number into an atomic. The value is the median of `latency_rounds` round trips,
//    each timed on its own. Before each round the pinger spins for `gap`, so that the loop is
//    back in its blocking wait (an iteration takes well under a microsecond) or busy polling
//    (the default window, 32 us, covers the gap): back to back, the next schedule would mostly
//    be found by the loop's own pre-wait BH check and no wake-up would be measured.
//  - corio-<backend>_<polling>_throughput: a producer thread calls schedule() in a tight loop,
//    without waiting for the runs, for `throughput_window`; the value is BH runs per second of
//    the home thread (schedules made before a run coalesce into it). Median of `reps`.
//  - epoll-eventfd_latency: the same round trip with a raw thread blocked in epoll_wait on an
//    eventfd (the pinger writes it; the thread reads it and stores the number).
//  - spin-atomic_latency: both threads spin on atomics: the physical limit of a round trip.
// Every variant answers through the same atomic store the pinger spins on, so they differ only
// in how the sleeping side is woken. backend is io_uring and epoll; polling is off (max_ns = 0)
// or on (poll_params defaults: max_ns = 32768, adaptive). Nothing is pinned: on a 2-core machine
// the spinning pinger and a busy-polling loop occupy both cores.
// The '#' line of each variant says what was measured: latency p10/p90/p99, the share of round
// trips answered on the pinger's own CPU (a context switch on one core rather than a cross-core
// wake-up: the scheduler put both threads there, typically because other work held the other
// core; such a run is not comparable with one at 0%) and, for corio, the loop's blocking waits,
// eventfd wake-ups and polling hits per round trip or per BH run.
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/error.hpp>

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int warmup_rounds = 1'000;
constexpr int latency_rounds = 20'000;
constexpr std::chrono::microseconds gap{10};
constexpr std::chrono::milliseconds throughput_window{300};
constexpr int reps = 5;

[[noreturn]] void fail(std::string_view what) {
    fmt::print(stderr, "bench_wakeup: {}: {}\n", what, std::strerror(errno));
    std::exit(1);
}

/// Spins until `until`; the pinger's pause between round trips.
void spin_until(clock_type::time_point until) {
    while (clock_type::now() < until) {
    }
}

/// Everything a thread spins on gets a cache-line pair of its own (Intel's adjacent-line
/// prefetcher moves lines in pairs): a flag sharing a line with the spun-on one would bounce
/// the line on every spin and measure false sharing instead of the wake-up.
constexpr std::size_t spin_alignment = 128;

/// How a ponger answers round trip `n`: one release store of `n` together with its CPU, so the
/// answer moves one cache line once. Placed with alignas(spin_alignment), except where the spin
/// baseline puts it next to its ping on purpose.
class reply {
public:
    void answer(std::uint64_t n) noexcept {
        const auto cpu = static_cast<std::uint64_t>(current_cpu());
        // release: pairs with the pinger's acquire load in answered(); nothing else is published.
        word_.store(n << cpu_bits | cpu, std::memory_order_release);
    }
    /// The calling thread's CPU, as answer() records it.
    static int current_cpu() noexcept { return static_cast<int>(sched_getcpu() & cpu_mask); }
    /// Whether round `n` has been answered; if so, `cpu` is where it was answered.
    bool answered(std::uint64_t n, int& cpu) const noexcept {
        const std::uint64_t word = word_.load(std::memory_order_acquire);
        cpu = static_cast<int>(word & cpu_mask);
        return word >> cpu_bits == n;
    }

private:
    static constexpr int cpu_bits = 16;
    static constexpr std::uint64_t cpu_mask = (1U << cpu_bits) - 1;
    std::atomic<std::uint64_t> word_{0};
};

/// The measured round trips of one latency variant, in ns and sorted, and how many of them
/// the ponger answered from the pinger's own CPU (a context switch, not a cross-core wake-up).
struct round_trips {
    std::vector<double> ns;
    int same_cpu = 0;
};

/// The pinger side of every latency variant, run on its own thread: warm-up plus measured
/// round trips, each started by `ping(n)` and ended when `pong` answers `n`; calls `finish()`
/// after the last one.
template <class Ping, class Finish>
round_trips run_pinger(const Ping& ping, const Finish& finish, const reply& pong) {
    round_trips result;
    result.ns.reserve(latency_rounds);
    auto last = clock_type::now();
    for (std::uint64_t n = 1; n <= warmup_rounds + latency_rounds; ++n) {
        spin_until(last + gap);
        const auto start = clock_type::now();
        ping(n);
        int pong_cpu;
        while (!pong.answered(n, pong_cpu)) {
        }
        last = clock_type::now();
        if (n > warmup_rounds) {
            result.ns.push_back(std::chrono::duration<double, std::nano>(last - start).count());
            if (pong_cpu == reply::current_cpu()) ++result.same_cpu;
        }
    }
    finish();
    std::sort(result.ns.begin(), result.ns.end());
    return result;
}

double percentile(const std::vector<double>& sorted, double p) {
    return sorted[static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1))];
}

/// Reports the median round trip and a '#' line with the spread, the share of round trips
/// answered on the pinger's CPU and `extra`.
void report_latency(std::string_view variant, const round_trips& trips,
                    std::string_view extra = {}) {
    const std::vector<double>& ns = trips.ns;
    bench::report("wakeup", variant, percentile(ns, 0.5), "ns");
    bench::note("{}: p10={:.0f} p90={:.0f} p99={:.0f} ns, same_cpu={:.0f}%{}", variant,
                percentile(ns, 0.1), percentile(ns, 0.9), percentile(ns, 0.99),
                100.0 * trips.same_cpu / static_cast<double>(ns.size()), extra);
}

struct corio_variant {
    corio::backend_kind backend;
    std::int64_t poll_max_ns;

    std::string name(std::string_view measure) const {
        return fmt::format("corio-{}_{}_{}", corio::to_string(backend),
                           poll_max_ns == 0 ? "nopoll" : "poll", measure);
    }
    corio::context_options options() const {
        return {.backend = backend, .name = "bench-wakeup", .polling = {.max_ns = poll_max_ns}};
    }
};

/// Per round trip (of the warm-up and measured rounds): what the loop did between `before`
/// and `after`.
std::string loop_activity(const corio::context_stats& before, const corio::context_stats& after) {
    const double rounds = warmup_rounds + latency_rounds;
    auto per_round = [rounds](std::uint64_t b, std::uint64_t a) {
        return static_cast<double>(a - b) / rounds;
    };
    return fmt::format(
        "; per round trip: blocking_waits={:.2f} wakeups={:.2f} poll_hits={:.2f} poll_ns={}",
        per_round(before.blocking_waits, after.blocking_waits),
        per_round(before.wakeups, after.wakeups), per_round(before.poll_hits, after.poll_hits),
        after.poll_ns);
}

void corio_latency(const corio_variant& variant) {
    corio::context ctx(variant.options());
    alignas(spin_alignment) reply pong;
    std::uint64_t runs = 0;  // home thread only
    alignas(spin_alignment) std::atomic<bool> finished{false};
    const corio::bottom_half bh =
        ctx.make_bh([&pong, &runs] { pong.answer(++runs); }, "bench-ping");

    const corio::context_stats before = ctx.stats();
    round_trips trips;
    std::thread pinger([&] {
        trips = run_pinger([&bh](std::uint64_t) { bh.schedule(); },
                           [&] {
                               finished.store(true, std::memory_order_release);
                               ctx.notify();
                           },
                           pong);
    });
    ctx.run_until([&finished] { return finished.load(std::memory_order_acquire); });
    pinger.join();
    report_latency(variant.name("latency"), trips, loop_activity(before, ctx.stats()));
}

/// BH runs of a throughput variant, and how many of them ran on the producer's CPU.
struct flood_count {
    std::uint64_t runs = 0;
    std::uint64_t same_cpu = 0;
};

double corio_throughput_rep(corio::context& ctx, flood_count& total) {
    flood_count count;  // home thread only
    // The CPU the producer last ran on: written by the producer, read by the BH (a hint only).
    alignas(spin_alignment) std::atomic<int> producer_cpu{-1};
    const corio::bottom_half bh = ctx.make_bh(
        [&count, &producer_cpu] {
            ++count.runs;
            if (producer_cpu.load(std::memory_order_relaxed) == sched_getcpu()) ++count.same_cpu;
        },
        "bench-flood");
    alignas(spin_alignment) std::atomic<bool> go{false};
    alignas(spin_alignment) std::atomic<bool> finished{false};
    std::thread producer([&] {
        while (!go.load(std::memory_order_acquire)) {
        }
        const auto deadline = clock_type::now() + throughput_window;
        do {
            for (int i = 0; i < 64; ++i) bh.schedule();
            producer_cpu.store(sched_getcpu(), std::memory_order_relaxed);
        } while (clock_type::now() < deadline);
        finished.store(true, std::memory_order_release);
        ctx.notify();
    });
    const double s = bench::seconds([&] {
        go.store(true, std::memory_order_release);
        ctx.run_until([&finished] { return finished.load(std::memory_order_acquire); });
    });
    producer.join();
    total.runs += count.runs;
    total.same_cpu += count.same_cpu;
    return static_cast<double>(count.runs) / s;
}

void corio_throughput(const corio_variant& variant) {
    corio::context ctx(variant.options());
    const corio::context_stats before = ctx.stats();
    const std::string name = variant.name("throughput");
    flood_count total;
    bench::report("wakeup", name,
                  bench::median_of(reps, [&] { return corio_throughput_rep(ctx, total); }),
                  "wakeups/s");
    const corio::context_stats after = ctx.stats();
    const auto runs = static_cast<double>(total.runs);
    auto per_run = [runs](std::uint64_t b, std::uint64_t a) {
        return static_cast<double>(a - b) / runs;
    };
    bench::note(
        "{}: same_cpu={:.0f}%; per BH run: iterations={:.2f} blocking_waits={:.2f} "
        "wakeups={:.2f} poll_hits={:.2f}",
        name, 100.0 * static_cast<double>(total.same_cpu) / runs,
        per_run(before.iterations, after.iterations),
        per_run(before.blocking_waits, after.blocking_waits),
        per_run(before.wakeups, after.wakeups), per_run(before.poll_hits, after.poll_hits));
}

void epoll_eventfd_latency() {
    const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) fail("eventfd");
    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail("epoll_create1");
    epoll_event registration{};
    registration.events = EPOLLIN;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &registration) < 0) fail("epoll_ctl");

    alignas(spin_alignment) reply pong;
    alignas(spin_alignment) std::atomic<bool> finished{false};
    auto signal = [efd] {
        const std::uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one) fail("write(eventfd)");
    };
    round_trips trips;
    std::thread pinger([&] {
        trips = run_pinger([&signal](std::uint64_t) { signal(); },
                           [&] {
                               finished.store(true, std::memory_order_release);
                               signal();
                           },
                           pong);
    });
    for (std::uint64_t runs = 0;;) {
        epoll_event event;
        const int n = epoll_wait(epfd, &event, 1, -1);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        if (n <= 0) continue;
        std::uint64_t count;
        if (read(efd, &count, sizeof count) < 0 && errno != EAGAIN) fail("read(eventfd)");
        if (finished.load(std::memory_order_acquire)) break;
        pong.answer(++runs);
    }
    pinger.join();
    close(epfd);
    close(efd);
    report_latency("epoll-eventfd_latency", trips);
}

void spin_atomic_latency() {
    // Ping and answer share one cache line: the fastest layout for a spinning pair (the line
    // just moves back and forth), which is what a physical limit should use.
    struct alignas(spin_alignment) {
        std::atomic<std::uint64_t> ping{0};
        reply pong;
    } line;
    std::atomic<std::uint64_t>& ping = line.ping;
    reply& pong = line.pong;
    alignas(spin_alignment) std::atomic<bool> finished{false};
    round_trips trips;
    std::thread pinger([&] {
        trips = run_pinger([&ping](std::uint64_t n) { ping.store(n, std::memory_order_release); },
                           [&finished] { finished.store(true, std::memory_order_release); }, pong);
    });
    std::uint64_t seen = 0;
    while (!finished.load(std::memory_order_acquire)) {
        const std::uint64_t n = ping.load(std::memory_order_acquire);
        if (n != seen) {
            seen = n;
            pong.answer(n);
        }
    }
    pinger.join();
    report_latency("spin-atomic_latency", trips);
}

}  // namespace

int main() {
    bench::note("bench=wakeup latency_rounds={} (+{} warm-up) gap={}us throughput={}x{}ms",
                latency_rounds, warmup_rounds, gap.count(), reps, throughput_window.count());
    const corio::poll_params defaults{};
    std::vector<corio_variant> variants;
    for (corio::backend_kind backend :
         {corio::backend_kind::io_uring, corio::backend_kind::epoll}) {
        try {
            corio::context probe({.backend = backend});
        } catch (const corio::error& e) {
            fmt::print("bench=wakeup variant=corio-{}_* skipped: {}\n", corio::to_string(backend),
                       e.what());
            continue;
        }
        variants.push_back({backend, 0});
        variants.push_back({backend, defaults.max_ns});
    }
    for (const auto& variant : variants) corio_latency(variant);
    for (const auto& variant : variants) corio_throughput(variant);
    epoll_eventfd_latency();
    spin_atomic_latency();
    return 0;
}
