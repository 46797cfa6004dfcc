// timers — many concurrent sleeps and a periodic ticker, stopped cleanly by SIGINT/SIGTERM.
//
// --sleepers N coroutines each sleep a random duration up to --max-sleep-ms and check that they
// did not wake before their deadline; meanwhile a ticker ticks every --period-ms, --ticks
// times, on a fixed schedule (tick k at k × period: no drift), printing how late each tick ran
// and how many sleepers are awake. A timer costs no allocation and no syscall of its own: the
// loop sleeps until the nearest deadline of all of them.
//
// The logic is in timers.hpp, written against a clock chosen by the caller: here the
// monotonic clock, and in tests/examples/test_timers_manual_clock.cpp the manual clock, which
// the test advances by hand to check exact tick times without waiting.
//
// SIGINT and SIGTERM arrive through a corio::signal_set: the signal wins a when_any against the
// work, which is then cancelled (every pending sleep ends with ECANCELED); the summary is
// printed and the exit status is 0 (1 if a sleeper ever woke early).
#include "timers.hpp"
#include "common/flags.hpp"

#include <corio/error.hpp>
#include <corio/signal.hpp>
#include <corio/spawn.hpp>
#include <corio/when_any.hpp>

#include <fmt/format.h>

#include <signal.h>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string_view>
#include <variant>

namespace {

using std::chrono::milliseconds;
constexpr corio::clock_type timer_clock = corio::clock_type::monotonic;

struct settings {
    int sleepers = 10000;
    int max_sleep_ms = 1000;
    int period_ms = 100;
    int ticks = 10;
    corio::backend_kind backend = corio::backend_kind::automatic;
};

double ms(std::int64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

corio::task<void> work(const settings& s, timers::sleep_report& report, int& ticks) {
    std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<std::int64_t> up_to(
        0, std::chrono::nanoseconds(milliseconds(s.max_sleep_ms)).count());
    std::vector<std::chrono::nanoseconds> durations;
    for (int i = 0; i < s.sleepers; ++i) durations.emplace_back(up_to(random));
    auto print_tick = [&](const timers::tick& t) {
        fmt::print(
            "tick {}/{}: due +{:.3f} ms, ran +{:.3f} ms ({:.3f} ms late); {} sleepers awake\n",
            t.number, s.ticks, ms(t.due_ns), ms(t.at_ns), ms(t.at_ns - t.due_ns), report.woke);
        std::fflush(stdout);  // one line at a time, also into a pipe
    };
    auto done = co_await corio::when_all(
        timers::sleepers(timer_clock, std::move(durations), report),
        timers::ticker(timer_clock, milliseconds(s.period_ms), s.ticks, print_tick));
    ticks = std::get<1>(done);
}

/// The work against the signals; the exit status.
corio::task<int> run(const settings& s, corio::signal_set& signals) {
    timers::sleep_report report;
    int ticks = 0;
    auto first = co_await corio::when_any(work(s, report, ticks), signals.wait());
    if (first.index() == 1) {
        const corio::result<int> signo = std::get<1>(first);
        fmt::print("interrupted by {}\n", signo && *signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
    fmt::print("sleepers: {} woke, {} early, {} cancelled; latest {:.3f} ms after its deadline\n",
               report.woke, report.early, report.cancelled, ms(report.max_late_ns));
    fmt::print("ticker: {} of {} ticks\n", ticks, s.ticks);
    if (report.early == 0) co_return 0;
    fmt::print(stderr, "timers: {} sleepers woke before their deadline\n", report.early);
    co_return 1;
}

constexpr std::string_view usage =
    "usage: timers [--sleepers N] [--max-sleep-ms M] [--period-ms P] [--ticks K]\n"
    "              [--backend auto|io_uring|epoll|poll]\n"
    "  --sleepers N      coroutines sleeping at once (default 10000)\n"
    "  --max-sleep-ms M  each sleeps a random time from 0 to M ms (default 1000)\n"
    "  --period-ms P     the ticker's period (default 100)\n"
    "  --ticks K         ticks before the ticker ends (default 10)\n"
    "  --backend B       the loop's backend (default auto: CORIO_BACKEND, else the best)\n"
    "SIGINT or SIGTERM stops everything early.\n";

}  // namespace

int main(int argc, char** argv) {
    settings s;
    examples::flags flags("timers", usage);
    flags.number("--sleepers", s.sleepers, 0, 10'000'000).number("--ticks", s.ticks, 0, 1'000'000);
    flags.number("--max-sleep-ms", s.max_sleep_ms, 0, 86'400'000);
    flags.number("--period-ms", s.period_ms, 1, 86'400'000);
    if (std::optional<int> status = flags.backend(s.backend).parse(argc, argv)) return *status;
    try {
        // First, before the context's thread pool can start a thread: every thread must
        // inherit the blocked signals, so that they are only ever read from the signalfd.
        corio::signal_set signals{SIGINT, SIGTERM};
        corio::context ctx({.backend = s.backend, .name = "timers"});
        fmt::print("timers: {} sleepers up to {} ms, {} ticks every {} ms, {} backend\n",
                   s.sleepers, s.max_sleep_ms, s.ticks, s.period_ms,
                   corio::to_string(ctx.backend()));
        std::fflush(stdout);
        return corio::run(ctx, run(s, signals));
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "timers: {}\n", e.what());
        return 1;
    }
}
