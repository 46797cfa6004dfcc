// co_await offload(fn): blocking work on the context's thread pool, the coroutine continuing on
// its own context with the value, the exception, or ECANCELED.
#include "support/loop_fixture.hpp"

#include <corio/offload.hpp>
#include <corio/spawn.hpp>
#include <corio/timeout.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using corio::context;
using corio::result;
using corio::task;
using corio::test::gate;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {

/// Counts its live instances: every construction (copy and move included) must be matched by
/// exactly one destruction.
struct counted {
    static inline std::atomic<int> live{0};
    int value;
    explicit counted(int v) : value(v) { ++live; }
    counted(const counted& o) : value(o.value) { ++live; }
    counted(counted&& o) noexcept : value(o.value) { ++live; }
    counted& operator=(const counted&) = default;
    ~counted() { --live; }
};

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "offload runs on a worker and continues on the context") {
    const auto home = std::this_thread::get_id();
    auto [value, worker, after] =
        corio::run(ctx, []() -> task<std::tuple<int, std::thread::id, std::thread::id>> {
            std::thread::id on;
            result<int> r = co_await corio::offload([&] {
                on = std::this_thread::get_id();
                return 6 * 7;
            });
            co_return std::tuple{r.value(), on, std::this_thread::get_id()};
        }());
    CHECK(value == 42);
    CHECK(worker != home);
    CHECK(after == home);
}

TEST_CASE_FIXTURE(loop_fixture, "offload of void work and of a move-only value") {
    const std::string s = corio::run(ctx, []() -> task<std::string> {
        bool ran = false;
        result<void> v = co_await corio::offload([&] { ran = true; });
        CHECK(v.ok());
        CHECK(ran);
        result<std::unique_ptr<std::string>> p =
            co_await corio::offload([] { return std::make_unique<std::string>("moved"); });
        co_return **p;
    }());
    CHECK(s == "moved");
}

TEST_CASE_FIXTURE(loop_fixture, "an exception thrown by the work is rethrown at co_await") {
    const std::string what = corio::run(ctx, []() -> task<std::string> {
        try {
            (void)co_await corio::offload(
                []() -> int { throw std::runtime_error("offload failed"); });
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "no exception";
    }());
    CHECK(what == "offload failed");
}

TEST_CASE_FIXTURE(loop_fixture, "a stop request while queued: ECANCELED and the work never runs") {
    ctx.pool().set_limits(0, 1);
    gate g;
    std::atomic<bool> second_ran{false};
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    auto first = corio::spawn(
        ctx, [](gate& gt) -> task<void> { (void)co_await corio::offload([&] { gt.wait(); }); }(g));
    while (g.waiting.load() < 1) ctx.poll(false);
    auto second =
        corio::spawn(ctx, [](std::atomic<bool>& ran, std::stop_token st) -> task<result<void>> {
            co_return co_await corio::offload([&] { ran = true; }, st);
        }(second_ran, token));
    while (ctx.pool().stats().queued == 0) ctx.poll(false);
    std::thread([&] { stop.request_stop(); }).join();
    ctx.run_until([&] { return second.done(); });
    CHECK(second.get().error() == std::errc::operation_canceled);
    g.open = true;
    ctx.run_until([&] { return first.done(); });
    first.get();
    CHECK_FALSE(second_ran.load());
}

TEST_CASE_FIXTURE(loop_fixture, "a stop request while running gives ECANCELED once the work ends") {
    gate g;
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    auto h = corio::spawn(ctx, [](gate& gt, std::stop_token st) -> task<result<int>> {
        co_return co_await corio::offload(
            [&] {
                gt.wait();
                return 1;
            },
            st);
    }(g, token));
    while (g.waiting.load() < 1) ctx.poll(false);
    stop.request_stop();
    for (int i = 0; i < 10; ++i) ctx.poll(false);
    CHECK_FALSE(h.done());  // the work may still use what it captured: the coroutine waits
    g.open = true;
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get().error() == std::errc::operation_canceled);
}

TEST_CASE_FIXTURE(loop_fixture, "the coroutine's own stop token and with_timeout cancel offload") {
    gate g;
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    auto h = corio::spawn(
        ctx,
        [](gate& gt) -> task<result<void>> {
            co_return co_await corio::offload([&] { gt.wait(); });
        }(g),
        "stopped", token);
    while (g.waiting.load() < 1) ctx.poll(false);
    stop.request_stop();
    g.open = true;
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get().error() == std::errc::operation_canceled);

    // The gate opens only once the timeout's stop request has reached the running work.
    gate g2;
    corio::thread_pool& pool = ctx.pool();
    const std::uint64_t cancelled_before = pool.stats().cancelled;
    std::thread opener([&] {
        while (pool.stats().cancelled == cancelled_before) std::this_thread::sleep_for(100us);
        g2.open = true;
    });
    const result<void> timed = corio::run(ctx, [](gate& gt) -> task<result<void>> {
        co_return co_await corio::with_timeout(
            1ms, [&](std::stop_token st) { return corio::offload([&] { gt.wait(); }, st); });
    }(g2));
    opener.join();
    CHECK(timed.error() == std::errc::timed_out);
}

TEST_CASE_FIXTURE(loop_fixture, "many concurrent offloads from many coroutines") {
    ctx.pool().set_limits(0, 4);
    constexpr int n = 2000;
    std::atomic<int> sum{0};
    std::vector<corio::join_handle<void>> handles;
    for (int i = 0; i < n; ++i) {
        handles.push_back(corio::spawn(ctx, [](int v, std::atomic<int>& total) -> task<void> {
            result<int> r = co_await corio::offload([v] { return v; });
            total.fetch_add(r.value());
        }(i, sum)));
    }
    ctx.run_until([&] {
        for (auto& h : handles) {
            if (!h.done()) return false;
        }
        return true;
    });
    CHECK(sum.load() == n * (n - 1) / 2);
}

// GCC 12 refuses this form at compile time (see offload.hpp); tests/meson.build checks that it
// does.
#if !(defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13)
TEST_CASE_FIXTURE(loop_fixture, "by-copy captures of work written inside co_await die once") {
    const std::string joined = corio::run(ctx, []() -> task<std::string> {
        const std::string name(40, 'n');  // beyond the small-string buffer: on the heap
        const std::vector<int> values{1, 2, 3};
        const counted c(4);
        result<std::string> r = co_await corio::offload([s = name, values, c] {
            return s + std::to_string(values.size()) + std::to_string(c.value);
        });
        co_return r.value();
    }());
    CHECK(joined == std::string(40, 'n') + "34");
    CHECK(counted::live.load() == 0);
}
#endif

TEST_CASE_FIXTURE(loop_fixture, "work captured by reference, copied or used in place") {
    const int sum = corio::run(ctx, []() -> task<int> {
        const std::string name(40, 'n');
        const counted c(1);
        result<int> by_reference = co_await corio::offload([&] { return c.value; });
        auto copied = [s = name, c] { return static_cast<int>(s.size()) + c.value; };
        result<int> by_copy = co_await corio::offload(copied);
        auto move_only = [p = std::make_unique<counted>(2)] { return p->value; };
        result<int> in_place = co_await corio::offload(std::ref(move_only));
        co_return by_reference.value() + by_copy.value() + in_place.value();
    }());
    CHECK(sum == 1 + 41 + 2);
    CHECK(counted::live.load() == 0);
}
