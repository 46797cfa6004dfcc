// The aio_co_* primitives: co_schedule, co_wake, co_enter, reschedule_self, suspend, sleep.
// Ports QEMU's rules: a coroutine scheduled on a context runs on that context's thread;
// reschedule_self to the current context does not suspend; a wake from another thread resumes
// the coroutine on its home context; one wake never resumes a coroutine twice.
#include "support/loop_fixture.hpp"

#include <corio/io_thread.hpp>
#include <corio/schedule.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <stop_token>
#include <thread>

using corio::context;
using corio::coroutine;
using corio::task;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "reschedule_self moves the coroutine to the target context's thread and back") {
    corio::io_thread w("worker");
    const auto here = std::this_thread::get_id();
    auto [there, back] = corio::run(
        ctx,
        [](context& home, context& other) -> task<std::pair<std::thread::id, std::thread::id>> {
            co_await corio::reschedule_self{other};
            CHECK(context::current() == &other);
            const auto t1 = std::this_thread::get_id();
            co_await corio::reschedule_self{home};
            co_return std::pair{t1, std::this_thread::get_id()};
        }(ctx, w.get_context()));
    CHECK(there == w.thread_id());
    CHECK(back == here);
}

TEST_CASE_FIXTURE(loop_fixture, "reschedule_self to the current context does not suspend") {
    const auto before = ctx.stats();
    corio::run(ctx, [](context& c) -> task<void> {
        const auto runs = c.stats().bh_runs;
        co_await corio::reschedule_self{c};
        CHECK(c.stats().bh_runs == runs);  // no pass was needed to continue
    }(ctx));
    CHECK(ctx.stats().iterations > before.iterations);
}

TEST_CASE_FIXTURE(loop_fixture, "co_schedule runs the coroutine on the target context's thread") {
    corio::io_thread w("worker");
    const auto ran_on = corio::run(ctx, [](context& other) -> task<std::thread::id> {
        co_await corio::suspend([&](coroutine self) { corio::co_schedule(other, self); });
        co_return std::this_thread::get_id();
    }(w.get_context()));
    CHECK(ran_on == w.thread_id());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a wake from another thread resumes the coroutine on its home context") {
    std::atomic<bool> woken_from_thread{false};
    const auto here = std::this_thread::get_id();
    const auto resumed_on = corio::run(ctx, [](std::atomic<bool>& flag) -> task<std::thread::id> {
        co_await corio::suspend([&](coroutine self) {
            std::thread([self, &flag] {
                flag.store(true);
                corio::co_wake(self);  // may run before the coroutine has finished suspending
            }).detach();
        });
        co_return std::this_thread::get_id();
    }(woken_from_thread));
    CHECK(woken_from_thread.load());
    CHECK(resumed_on == here);
}

TEST_CASE_FIXTURE(loop_fixture, "a million same-context wakes ping-pong in constant stack") {
    // Two coroutines wake each other; every wake is issued from inside the waker, so it is
    // deferred until the waker suspends. A recursive implementation would exhaust the stack.
    struct game {
        coroutine a, b;
        long rounds = 0;
    } g;
    constexpr long total = 1'000'000;
    auto player = [](game& gm, bool first) -> task<void> {
        for (;;) {
            co_await corio::suspend([&](coroutine self) {
                (first ? gm.a : gm.b) = self;
                coroutine other = first ? gm.b : gm.a;
                if (other && gm.rounds < total) {
                    ++gm.rounds;
                    corio::co_wake(other);
                }
            });
            if (gm.rounds >= total) co_return;
        }
    };
    auto pa = corio::spawn(ctx, player(g, true));
    auto pb = corio::spawn(ctx, player(g, false));
    ctx.run_until([&] { return g.rounds >= total; });
    CHECK(g.rounds == total);
    // The last one woken has ended; release the other from its last suspension.
    if (!pa.done()) corio::co_wake(g.a);
    if (!pb.done()) corio::co_wake(g.b);
    ctx.run_until([&] { return pa.done() && pb.done(); });
}

TEST_CASE_FIXTURE(loop_fixture,
                  "co_enter runs the coroutine now when called outside any coroutine") {
    coroutine parked;
    int steps = 0;
    auto h = corio::spawn(ctx, [](coroutine& p, int& s) -> task<void> {
        ++s;
        co_await corio::suspend([&](coroutine self) { p = self; });
        ++s;
    }(parked, steps));
    ctx.poll(false);
    REQUIRE(parked);
    CHECK(steps == 1);
    int steps_right_after = 0;
    ctx.post([&] {  // ctx is current here and no coroutine runs: entered immediately
        corio::co_enter(ctx, parked);
        steps_right_after = steps;
    });
    ctx.poll(false);
    CHECK(steps_right_after == 2);
    CHECK(h.done());
}

TEST_CASE("scheduling a coroutine twice aborts, naming the scheduler") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx;
        corio::run(ctx, [](context& c) -> task<void> {
            co_await corio::suspend([&](coroutine self) {
                corio::co_schedule(c, self);
                corio::co_schedule(c, self);
            });
        }(ctx));
    });
    CHECK(msg.find("already scheduled") != std::string::npos);
    CHECK(msg.find("co_schedule") != std::string::npos);
}

TEST_CASE("primitives used outside a spawned coroutine abort with a message") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx;
        corio::reschedule_self r{ctx};
        (void)r.await_ready();
        r.await_suspend(std::noop_coroutine());
    });
    CHECK(msg.find("outside a coroutine") != std::string::npos);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "sleep_until on the manual clock resumes when the clock is advanced") {
    bool woke = false;
    auto h = corio::spawn(ctx, [](context& c, bool& w) -> task<void> {
        co_await corio::sleep_until(corio::clock_type::manual,
                                    c.now(corio::clock_type::manual) + 1000);
        w = true;
    }(ctx, woke));
    for (int i = 0; i < 3; ++i) ctx.poll(false);
    CHECK_FALSE(woke);
    ctx.advance_manual_clock(999ns);
    ctx.poll(false);
    CHECK_FALSE(woke);
    ctx.advance_manual_clock(1ns);
    ctx.poll(false);
    CHECK(woke);
    CHECK(h.done());
}

TEST_CASE_FIXTURE(loop_fixture, "sleep_for on the monotonic clock sleeps at least that long") {
    const auto start = std::chrono::steady_clock::now();
    corio::run(ctx, []() -> task<void> {
        co_await corio::sleep_for(2ms);
        co_await corio::sleep_for(-5ms);  // in the past: does not suspend
    }());
    CHECK(std::chrono::steady_clock::now() - start >= 2ms);
}

TEST_CASE_FIXTURE(loop_fixture, "a sleep cancelled from another thread resumes with ECANCELED") {
    corio::test::remote_stop stop{ctx};
    const auto start = std::chrono::steady_clock::now();
    const corio::result<void> r =
        corio::run(ctx, [](std::stop_token st, std::atomic<bool>& s) -> task<corio::result<void>> {
            s.store(true);
            co_return co_await corio::sleep_for(1h, st);
        }(stop.token(), stop.armed));
    stop.join();
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK(std::chrono::steady_clock::now() - start < 1min);
    CHECK(ctx.compute_timeout() == -1);  // the timer was cancelled, not left armed
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a sleep whose token is already stopped returns ECANCELED at once") {
    std::stop_source stop;
    stop.request_stop();
    const corio::result<void> r =
        corio::run(ctx, [](std::stop_token st) -> task<corio::result<void>> {
            co_return co_await corio::sleep_for(1h, st);
        }(stop.get_token()));
    CHECK(r.error() == std::errc::operation_canceled);
}

TEST_CASE_FIXTURE(loop_fixture, "a sleep that ends before the stop request is not cancelled") {
    std::stop_source stop;
    bool finished = false;
    corio::result<void> outcome = corio::result<void>::from_errno(EINVAL);
    auto h = corio::spawn(
        ctx, [](context& c, std::stop_token st, bool& f, corio::result<void>& out) -> task<void> {
            out = co_await corio::sleep_until(corio::clock_type::manual,
                                              c.now(corio::clock_type::manual) + 10, st);
            f = true;
        }(ctx, stop.get_token(), finished, outcome));
    ctx.poll(false);
    ctx.advance_manual_clock(10ns);
    ctx.poll(false);
    CHECK(finished);
    stop.request_stop();  // too late: nothing happens, nothing is posted
    ctx.poll(false);
    CHECK(outcome.ok());
    CHECK(h.done());
}
