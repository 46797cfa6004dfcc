// pingpong — one coroutine hopping between two io_threads with `reschedule_self`.
//
// `co_await corio::reschedule_self{ctx}` suspends the running coroutine on the thread it is on
// and continues it on the thread that runs `ctx`: one hop. The coroutine below hops A -> B ->
// A (a round trip) until it is stopped, while the main thread's own context wakes up once a
// second to print the rates. Nothing else happens on either thread, so a hop costs a
// cross-thread wake-up: with polling off (--poll-max-ns 0) the idle side sleeps in the kernel
// and the other side's hand-over wakes it with an eventfd write; with adaptive polling on (the
// default) the idle side spins briefly first and often sees the coroutine arrive without
// sleeping. tests/bench/bench_pingpong.cpp measures the same against raw threads and Asio.
#include "common/flags.hpp"

#include <corio/error.hpp>
#include <corio/io_thread.hpp>
#include <corio/schedule.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string_view>

namespace {

using std::chrono::steady_clock;

corio::task<void> bounce(corio::context& a, corio::context& b, std::atomic<std::uint64_t>& hops,
                         std::stop_token stop) {
    co_await corio::reschedule_self{a};
    while (!stop.stop_requested()) {
        co_await corio::reschedule_self{b};  // now on thread B
        co_await corio::reschedule_self{a};  // back on thread A
        // Written on A, read by the main thread: a counter only, relaxed is enough.
        hops.fetch_add(2, std::memory_order_relaxed);
    }
}

/// Runs on the main thread's context: starts the coroutine, prints the rates once a second,
/// then stops it and waits until it has ended (on thread A).
corio::task<void> report(corio::context& a, corio::context& b, int seconds) {
    std::atomic<std::uint64_t> hops{0};
    std::stop_source stop;
    corio::join_handle<void> bouncing = corio::spawn(a, bounce(a, b, hops, stop.get_token()));
    const steady_clock::time_point start = steady_clock::now();
    steady_clock::time_point last = start;
    std::uint64_t last_hops = 0;
    for (int s = 1; s <= seconds; ++s) {
        co_await corio::sleep_for(std::chrono::seconds(1));
        const steady_clock::time_point now = steady_clock::now();
        const std::uint64_t total = hops.load(std::memory_order_relaxed);
        const double rate = static_cast<double>(total - last_hops) /
                            std::chrono::duration<double>(now - last).count();
        fmt::print("{} s: {:.0f} hops/s, {:.0f} round trips/s\n", s, rate, rate / 2);
        last = now;
        last_hops = total;
    }
    stop.request_stop();
    co_await bouncing;
    const double elapsed = std::chrono::duration<double>(steady_clock::now() - start).count();
    fmt::print("{} hops in {:.2f} s: {:.0f} hops/s on average\n", hops.load(), elapsed,
               static_cast<double>(hops.load()) / elapsed);
}

constexpr std::string_view usage =
    "usage: pingpong [--duration S] [--poll-max-ns N] [--backend auto|io_uring|epoll|poll]\n"
    "  --duration S     seconds to run, printing the rates every second (default 3)\n"
    "  --poll-max-ns N  adaptive polling limit of both threads' loops (0: off; default 32768)\n"
    "  --backend B      the loops' backend (default auto: CORIO_BACKEND, else the best)\n";

}  // namespace

int main(int argc, char** argv) {
    int seconds = 3;
    corio::context_options options{.name = "pingpong"};
    examples::flags flags("pingpong", usage);
    flags.number("--duration", seconds, 1, 86400);
    flags.number("--poll-max-ns", options.polling.max_ns, 0, 1'000'000'000);
    if (std::optional<int> status = flags.backend(options.backend).parse(argc, argv))
        return *status;
    try {
        corio::io_thread a("pingpong-a", options);
        corio::io_thread b("pingpong-b", options);
        // The main thread only prints: its own loop does not poll.
        corio::context home({.backend = options.backend, .name = "main", .polling = {.max_ns = 0}});
        fmt::print("pingpong: {} backend, poll max {} ns, {} s\n",
                   corio::to_string(a.get_context().backend()), options.polling.max_ns, seconds);
        corio::run(home, report(a.get_context(), b.get_context(), seconds));
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "pingpong: {}\n", e.what());
        return 1;
    }
    return 0;
}
