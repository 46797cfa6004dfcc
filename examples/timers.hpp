// timers.hpp — what the timers example does, written against "a clock of the current context"
// so that one code runs in two places: examples/timers.cpp runs it on the monotonic clock, in
// real time; tests/examples/test_timers_manual_clock.cpp runs it on the manual clock, which
// moves only when the test calls context::advance_manual_clock, and checks exact tick times
// and wake-ups without ever waiting. Code that takes its clock as a parameter (instead of
// calling sleep_for on the default clock) is testable this way.
#pragma once

#include <corio/sleep.hpp>
#include <corio/task.hpp>
#include <corio/when_all.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace timers {

/// What the sleepers saw, updated as each one ends.
struct sleep_report {
    std::size_t woke = 0;          ///< slept until their deadline
    std::size_t early = 0;         ///< woke before their deadline: a bug if ever non-zero
    std::size_t cancelled = 0;     ///< stopped before their deadline
    std::int64_t max_late_ns = 0;  ///< the longest a sleeper woke after its deadline
};

/// Sleeps `duration` on `clock`, then checks the clock against the deadline.
inline corio::task<void> sleeper(corio::clock_type clock, std::chrono::nanoseconds duration,
                                 sleep_report& report) {
    corio::context& ctx = *corio::context::current();
    const std::int64_t deadline = ctx.now(clock) + duration.count();
    // No stop token given: the sleep still ends with ECANCELED when the task is stopped (when_all
    // hands its caller's stop token to every task it runs).
    if (!co_await corio::sleep_until(clock, deadline)) {
        ++report.cancelled;
        co_return;
    }
    const std::int64_t late = ctx.now(clock) - deadline;
    if (late < 0) {
        ++report.early;
    } else {
        ++report.woke;
        report.max_late_ns = std::max(report.max_late_ns, late);
    }
}

/// One sleeper per duration, all at once on the current context; returns when all have ended.
inline corio::task<void> sleepers(corio::clock_type clock,
                                  std::vector<std::chrono::nanoseconds> durations,
                                  sleep_report& report) {
    std::vector<corio::task<void>> all;
    all.reserve(durations.size());
    for (std::chrono::nanoseconds d : durations) all.push_back(sleeper(clock, d, report));
    co_await corio::when_all(std::move(all));
}

/// One tick of the ticker; times in ns since the ticker started.
struct tick {
    int number;           ///< 1, 2, ...
    std::int64_t due_ns;  ///< number × period
    std::int64_t at_ns;   ///< when it ran: never before due_ns
};

/// Calls `on_tick(tick)` every `period` on `clock`, `count` times, and returns how many ticks
/// ran (fewer if the task was stopped). Tick k is due at start + k × period, computed from the
/// start rather than from the previous tick, so a late wake-up delays one tick, never the ones
/// after it: the schedule does not drift. A tick more than a period late is followed at once by
/// the ones already due (none is skipped).
template <class OnTick>
corio::task<int> ticker(corio::clock_type clock, std::chrono::nanoseconds period, int count,
                        OnTick on_tick) {
    corio::context& ctx = *corio::context::current();
    const std::int64_t start = ctx.now(clock);
    for (int k = 1; k <= count; ++k) {
        const std::int64_t due = start + k * period.count();
        if (!co_await corio::sleep_until(clock, due)) co_return k - 1;  // stopped
        on_tick(tick{k, due - start, ctx.now(clock) - start});
    }
    co_return count;
}

}  // namespace timers
