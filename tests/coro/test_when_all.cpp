// when_all: concurrency on one context, results in order, exceptions after everything finished.
#include "support/loop_fixture.hpp"

#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/when_all.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

using corio::clock_type;
using corio::context;
using corio::task;
using corio::test::loop_fixture;

namespace {

// Sleeps until the manual clock reaches `at`, records its name, returns `value`.
task<int> step(std::int64_t at, std::vector<std::string>& log, std::string name, int value) {
    (void)co_await corio::sleep_until(clock_type::manual, at);
    log.push_back(name);
    co_return value;
}

task<void> failing(std::int64_t at, std::vector<std::string>& log) {
    (void)co_await corio::sleep_until(clock_type::manual, at);
    log.push_back("failing");
    throw std::runtime_error("when_all member failed");
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "when_all runs tasks concurrently and returns their values in argument order") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<int> {
        auto [a, b, c2] = co_await corio::when_all(step(t + 30, l, "a", 1), step(t + 10, l, "b", 2),
                                                   step(t + 20, l, "c", 3));
        co_return a * 100 + b * 10 + c2;
    }(log, t0));
    for (int i = 0; i < 3; ++i) {
        ctx.poll(false);
        ctx.advance_manual_clock(std::chrono::nanoseconds(10));
    }
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get() == 123);
    CHECK(log == std::vector<std::string>{"b", "c", "a"});  // interleaved by their deadlines
}

TEST_CASE_FIXTURE(loop_fixture,
                  "when_all rethrows the first exception after every task has finished") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h =
        corio::spawn(ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<std::string> {
            try {
                (void)co_await corio::when_all(failing(t + 10, l), step(t + 20, l, "late", 1));
            } catch (const std::runtime_error& e) {
                co_return e.what();
            }
            co_return "no exception";
        }(log, t0));
    for (int i = 0; i < 3; ++i) {
        ctx.poll(false);
        ctx.advance_manual_clock(std::chrono::nanoseconds(10));
    }
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get() == "when_all member failed");
    CHECK(log == std::vector<std::string>{"failing", "late"});  // the late one was awaited too
}
