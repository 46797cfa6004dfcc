// The timers example's logic (examples/timers.hpp) on the manual clock: the test moves time by
// hand, so tick times and wake-ups are exact and nothing ever waits for real time to pass.
#include "support/loop_fixture.hpp"
#include "timers.hpp"

#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <stop_token>
#include <vector>

using corio::clock_type;
using corio::context;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {

/// Runs every iteration that has something to do, without blocking.
void drain(context& ctx) {
    while (ctx.poll(false)) {
    }
}

/// Moves the manual clock forward by `delta`, then runs what became due.
void advance_clock(context& ctx, std::chrono::nanoseconds delta) {
    ctx.advance_manual_clock(delta);
    drain(ctx);
}

bool operator==(const timers::tick& a, const timers::tick& b) {
    return a.number == b.number && a.due_ns == b.due_ns && a.at_ns == b.at_ns;
}

timers::tick tick(int number, std::chrono::milliseconds due, std::chrono::milliseconds at) {
    return {number, std::chrono::nanoseconds(due).count(), std::chrono::nanoseconds(at).count()};
}

/// 1000 sleepers of 1 to 100 ms, in a scrambled order.
std::vector<std::chrono::nanoseconds> durations() {
    std::vector<std::chrono::nanoseconds> all;
    for (int i = 0; i < 1000; ++i) all.emplace_back(std::chrono::milliseconds(i * 37 % 100 + 1));
    return all;
}

std::size_t count_up_to(const std::vector<std::chrono::nanoseconds>& all,
                        std::chrono::nanoseconds t) {
    return static_cast<std::size_t>(
        std::count_if(all.begin(), all.end(), [t](auto d) { return d <= t; }));
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "each tick runs when the manual clock reaches it, and late ticks "
                  "do not move the schedule") {
    std::vector<timers::tick> ticks;
    auto ticker = corio::spawn(ctx, timers::ticker(clock_type::manual, 100ms, 5,
                                                   [&](timers::tick t) { ticks.push_back(t); }));
    drain(ctx);  // started, asleep until +100 ms
    advance_clock(ctx, 99ms);
    CHECK(ticks.empty());
    advance_clock(ctx, 1ms);
    REQUIRE(ticks.size() == 1);
    CHECK(ticks[0] == tick(1, 100ms, 100ms));

    // 250 ms at once: ticks 2 and 3 run late, back to back; tick 4 is still due at +400 ms.
    advance_clock(ctx, 250ms);
    REQUIRE(ticks.size() == 3);
    CHECK(ticks[1] == tick(2, 200ms, 350ms));
    CHECK(ticks[2] == tick(3, 300ms, 350ms));
    advance_clock(ctx, 49ms);
    CHECK(ticks.size() == 3);
    advance_clock(ctx, 1ms);
    REQUIRE(ticks.size() == 4);
    CHECK(ticks[3] == tick(4, 400ms, 400ms));

    advance_clock(ctx, 100ms);
    REQUIRE(ticks.size() == 5);
    CHECK(ticks[4] == tick(5, 500ms, 500ms));
    REQUIRE(ticker.done());
    CHECK(ticker.get() == 5);
    advance_clock(ctx, 1s);  // the ticker has ended: no more ticks
    CHECK(ticks.size() == 5);
}

TEST_CASE_FIXTURE(loop_fixture, "every sleeper wakes exactly at its deadline, never before") {
    const std::vector<std::chrono::nanoseconds> all = durations();
    timers::sleep_report report;
    auto sleepers = corio::spawn(ctx, timers::sleepers(clock_type::manual, all, report));
    drain(ctx);
    CHECK(report.woke == 0);
    for (auto t = 1ms; t <= 100ms; t += 1ms) {
        advance_clock(ctx, 1ms);
        CHECK(report.woke == count_up_to(all, t));
    }
    CHECK(sleepers.done());
    CHECK(report.woke == all.size());
    CHECK(report.early == 0);
    CHECK(report.cancelled == 0);
    CHECK(report.max_late_ns == 0);  // the clock stopped at each deadline
}

TEST_CASE_FIXTURE(loop_fixture, "a sleeper the clock has passed reports how late it woke") {
    timers::sleep_report report;
    auto sleepers = corio::spawn(ctx, timers::sleepers(clock_type::manual, {10ms, 30ms}, report));
    drain(ctx);
    advance_clock(ctx, 25ms);
    CHECK(report.woke == 1);
    CHECK(report.max_late_ns == std::chrono::nanoseconds(15ms).count());
    advance_clock(ctx, 5ms);
    CHECK(sleepers.done());
    CHECK(report.woke == 2);
    CHECK(report.max_late_ns == std::chrono::nanoseconds(15ms).count());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "stopping the sleepers and the ticker cancels them, which is "
                  "never counted as an early wake-up") {
    const std::vector<std::chrono::nanoseconds> all = durations();
    timers::sleep_report report;
    std::stop_source stop = corio::test::new_stop_source();
    auto sleepers = corio::spawn(ctx, timers::sleepers(clock_type::manual, all, report), "sleepers",
                                 stop.get_token());
    int ticks = 0;
    auto ticker = corio::spawn(
        ctx, timers::ticker(clock_type::manual, 40ms, 10, [&](timers::tick) { ++ticks; }), "ticker",
        stop.get_token());
    drain(ctx);
    advance_clock(ctx, 50ms);
    CHECK(ticks == 1);
    stop.request_stop();
    drain(ctx);
    REQUIRE(sleepers.done());
    REQUIRE(ticker.done());
    CHECK(ticker.get() == 1);
    CHECK(report.woke == count_up_to(all, 50ms));
    CHECK(report.cancelled == all.size() - report.woke);
    CHECK(report.early == 0);
    advance_clock(ctx, 1s);  // nothing is left asleep
    CHECK(ticks == 1);
    CHECK(report.woke + report.cancelled == all.size());
}
