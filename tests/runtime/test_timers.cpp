// Timers: order, ties, re-arm and cancel from callbacks, the manual clock, loop timeouts.
#include "support/loop_fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

using corio::clock_type;
using corio::context;
using corio::timer;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {
std::int64_t manual_now(context& ctx) {
    return ctx.now(clock_type::manual);
}
}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "timers fire in deadline order, ties in arming order") {
    std::vector<int> order;
    std::vector<std::unique_ptr<timer>> timers;
    const std::int64_t base = manual_now(ctx);
    const std::int64_t deadlines[] = {50, 10, 30, 10, 20, 50, 10};
    for (int i = 0; i < 7; ++i) {
        timers.push_back(
            std::make_unique<timer>(ctx, clock_type::manual, [&order, i] { order.push_back(i); }));
        timers.back()->arm_at(base + deadlines[i]);
    }
    CHECK_FALSE(ctx.poll(false));
    ctx.advance_manual_clock(100ns);
    CHECK(ctx.poll(false));
    CHECK(order == std::vector<int>{1, 3, 6, 4, 2, 0, 5});
    CHECK(ctx.stats().timers_fired == 7);
}

TEST_CASE_FIXTURE(loop_fixture, "a timer fires only once its deadline has passed") {
    int fired = 0;
    timer t(ctx, clock_type::manual, [&] { ++fired; });
    t.arm_after(100ns);
    CHECK(t.pending());
    CHECK(t.deadline() == manual_now(ctx) + 100);
    ctx.advance_manual_clock(99ns);
    CHECK_FALSE(ctx.poll(false));
    CHECK(fired == 0);
    ctx.advance_manual_clock(1ns);
    CHECK(ctx.poll(false));
    CHECK(fired == 1);
    CHECK_FALSE(t.pending());
    CHECK(t.deadline() == -1);
}

TEST_CASE_FIXTURE(loop_fixture, "re-arming moves a timer and cancel disarms it") {
    int fired = 0;
    timer t(ctx, clock_type::manual, [&] { ++fired; });
    t.arm_after(10ns);
    t.arm_after(1000ns);
    ctx.advance_manual_clock(500ns);
    CHECK_FALSE(ctx.poll(false));
    t.cancel();
    t.cancel();  // idempotent
    ctx.advance_manual_clock(1000ns);
    CHECK_FALSE(ctx.poll(false));
    CHECK(fired == 0);
    t.arm_at(0);  // in the past: fires on the next iteration
    CHECK(ctx.poll(false));
    CHECK(fired == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a timer re-armed at 'now' from its callback fires in the next iteration") {
    int fired = 0;
    timer* self = nullptr;
    timer t(ctx, clock_type::manual, [&] {
        ++fired;
        self->arm_at(manual_now(ctx));
    });
    self = &t;
    t.arm_at(manual_now(ctx));
    CHECK(ctx.poll(false));
    CHECK(fired == 1);
    CHECK(ctx.compute_timeout() == 0);
    CHECK(ctx.poll(false));
    CHECK(fired == 2);
    t.cancel();
}

TEST_CASE_FIXTURE(
    loop_fixture,
    "a timer cancelled or destroyed by an earlier callback of the same pass does not fire") {
    int b_fired = 0;
    int c_fired = 0;
    auto b = std::make_unique<timer>(ctx, clock_type::manual, [&] { ++b_fired; });
    auto c = std::make_unique<timer>(ctx, clock_type::manual, [&] { ++c_fired; });
    timer a(ctx, clock_type::manual, [&] {
        b->cancel();
        c.reset();
    });
    a.arm_after(1ns);
    b->arm_after(2ns);
    c->arm_after(3ns);
    ctx.advance_manual_clock(10ns);
    CHECK(ctx.poll(false));
    CHECK(b_fired == 0);
    CHECK(c_fired == 0);
    CHECK_FALSE(b->pending());
}

TEST_CASE_FIXTURE(loop_fixture, "a timer destroyed from its own callback is safe") {
    int fired = 0;
    std::unique_ptr<timer> t;
    t = std::make_unique<timer>(ctx, clock_type::manual, [&] {
        ++fired;
        t.reset();
    });
    t->arm_after(1ns);
    ctx.advance_manual_clock(1ns);
    CHECK(ctx.poll(false));
    CHECK(fired == 1);
    CHECK_FALSE(t);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a nested poll from a timer callback fires each expired timer once") {
    std::vector<int> fired(3, 0);
    std::vector<std::unique_ptr<timer>> timers;
    for (int i = 0; i < 3; ++i) {
        timers.push_back(std::make_unique<timer>(ctx, clock_type::manual, [&, i] {
            ++fired[i];
            if (i == 0) ctx.poll(false);
        }));
        timers.back()->arm_after(std::chrono::nanoseconds(i + 1));
    }
    ctx.advance_manual_clock(10ns);
    ctx.poll(false);
    ctx.poll(false);
    CHECK(fired == std::vector<int>{1, 1, 1});
}

TEST_CASE_FIXTURE(
    loop_fixture,
    "compute_timeout follows the nearest monotonic deadline; manual timers never bound it") {
    CHECK(ctx.compute_timeout() == -1);
    timer manual(ctx, clock_type::manual, [] {});
    manual.arm_after(1ns);
    CHECK(ctx.compute_timeout() == -1);  // the manual clock does not move by itself
    timer mono(ctx, clock_type::monotonic, [] {});
    mono.arm_after(1h);
    const std::int64_t t = ctx.compute_timeout();
    CHECK(t > std::chrono::nanoseconds(59min).count());
    CHECK(t <= std::chrono::nanoseconds(1h).count());
    ctx.advance_manual_clock(1ns);
    CHECK(ctx.compute_timeout() == 0);
}

TEST_CASE_FIXTURE(loop_fixture, "a blocking poll wakes for a monotonic timer") {
    int fired = 0;
    timer t(ctx, clock_type::monotonic, [&] { ++fired; });
    const auto start = std::chrono::steady_clock::now();
    t.arm_after(2ms);
    while (fired == 0) ctx.poll(true);
    CHECK(std::chrono::steady_clock::now() - start >= 2ms);
}

TEST_CASE_FIXTURE(loop_fixture, "a realtime timer fires") {
    int fired = 0;
    timer t(ctx, clock_type::realtime, [&] { ++fired; });
    t.arm_at(ctx.now(clock_type::realtime) + 100'000);
    while (fired == 0) ctx.poll(true);
    CHECK(fired == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "advancing the manual clock from another thread wakes a blocked poll") {
    int fired = 0;
    timer t(ctx, clock_type::manual, [&] { ++fired; });
    t.arm_after(5ns);
    std::thread helper([&] { ctx.advance_manual_clock(5ns); });
    while (fired == 0) ctx.poll(true);
    helper.join();
}

TEST_CASE_FIXTURE(loop_fixture,
                  "many timers with random deadlines, re-arms and cancels fire in order") {
    constexpr int count = 20000;
    std::mt19937 rng(42);
    std::uniform_int_distribution<std::int64_t> when(1, 5000);
    std::vector<std::int64_t> deadline(count);
    std::vector<int> fired;
    std::vector<std::unique_ptr<timer>> timers;
    for (int i = 0; i < count; ++i) {
        timers.push_back(
            std::make_unique<timer>(ctx, clock_type::manual, [&fired, i] { fired.push_back(i); }));
    }
    const std::int64_t base = manual_now(ctx);
    std::vector<bool> armed(count, false);
    for (int round = 0; round < 3; ++round) {  // later rounds re-arm or cancel earlier timers
        for (int i = 0; i < count; ++i) {
            if (rng() % 4 == 0) {
                timers[i]->cancel();
                armed[i] = false;
            } else {
                deadline[i] = base + when(rng);
                timers[i]->arm_at(deadline[i]);
                armed[i] = true;
            }
        }
    }
    ctx.advance_manual_clock(10000ns);
    ctx.poll(false);
    int expected = 0;
    for (int i = 0; i < count; ++i) expected += armed[i];
    REQUIRE(fired.size() == static_cast<std::size_t>(expected));
    for (std::size_t k = 1; k < fired.size(); ++k) {
        REQUIRE(deadline[fired[k - 1]] <= deadline[fired[k]]);
    }
    for (int i : fired) CHECK(armed[i]);
}
