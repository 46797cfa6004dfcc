// The per-context thread pool: work on workers, completions on the home thread, limits,
// retirement of idle workers, cancellation before and while running, destruction with work in
// flight, and a stress run with random cancellations and limit changes.
#include "support/loop_fixture.hpp"

#include <corio/error.hpp>
#include <corio/thread_pool.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <latch>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using corio::context;
using corio::result;
using corio::test::gate;
using corio::test::loop_fixture;
using corio::test::poll_until;
using namespace std::chrono_literals;

// The loops `while (!condition) sleep_for(...)` below wait for a condition another thread makes
// true (jobs arrived at a gate, idle workers retired): the sleep is only the polling back-off.

namespace {

// Counts destructions: a result that is dropped unseen must still be destroyed.
struct tracked {
    std::shared_ptr<std::atomic<int>> destroyed;
    explicit tracked(std::shared_ptr<std::atomic<int>> d) : destroyed(std::move(d)) {}
    tracked(tracked&& other) noexcept = default;
    ~tracked() {
        if (destroyed) destroyed->fetch_add(1);
    }
};

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "work runs on a worker and its completion on the home thread") {
    const auto home = std::this_thread::get_id();
    std::thread::id worker;
    std::optional<result<int>> got;
    std::thread::id completed_on;
    ctx.pool().submit(
        [&] {
            worker = std::this_thread::get_id();
            return 42;
        },
        [&](result<int> r) {
            got = r;
            completed_on = std::this_thread::get_id();
        });
    poll_until(ctx, [&] { return got.has_value(); });
    REQUIRE(got->ok());
    CHECK(**got == 42);
    CHECK(worker != home);
    CHECK(completed_on == home);
}

TEST_CASE_FIXTURE(loop_fixture, "void work completes with an empty result") {
    bool ran = false;
    std::optional<result<void>> got;
    ctx.pool().submit([&] { ran = true; }, [&](result<void> r) { got = r; });
    poll_until(ctx, [&] { return got.has_value(); });
    CHECK(got->ok());
    CHECK(ran);
}

TEST_CASE_FIXTURE(loop_fixture, "an exception thrown by the work propagates out of poll()") {
    bool done_called = false;
    ctx.pool().submit([]() -> int { throw std::runtime_error("work failed"); },
                      [&](result<int>) { done_called = true; });
    std::string what;
    while (what.empty()) {
        try {
            ctx.poll(true);
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
    }
    CHECK(what == "work failed");
    CHECK_FALSE(done_called);
}

TEST_CASE_FIXTURE(loop_fixture, "set_limits validates like QEMU and changes nothing on error") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_limits(1, 3);
    for (auto [min, max] : {std::pair{-1, 4}, {3, 2}, {0, 0}, {2, -1}}) {
        CAPTURE(min);
        CAPTURE(max);
        try {
            pool.set_limits(min, max);
            FAIL("no error");
        } catch (const corio::error& e) {
            CHECK(e.code().value() == EINVAL);
        }
        CHECK(pool.stats().min_threads == 1);
        CHECK(pool.stats().max_threads == 3);
    }
    CHECK(pool.stats().threads == 1);  // min workers are started at once
}

TEST_CASE_FIXTURE(loop_fixture, "no more than max workers, however much work is queued") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_limits(0, 2);
    std::atomic<int> concurrent{0};
    std::atomic<int> peak{0};
    int done = 0;
    constexpr int jobs = 50;
    for (int i = 0; i < jobs; ++i) {
        pool.submit(
            [&] {
                const int now = concurrent.fetch_add(1) + 1;
                int seen = peak.load();
                while (now > seen && !peak.compare_exchange_weak(seen, now)) {
                }
                // Not ordering: holds the worker so that jobs overlap, which `peak` measures.
                std::this_thread::sleep_for(200us);
                concurrent.fetch_sub(1);
            },
            [&](result<void> r) {
                CHECK(r.ok());
                ++done;
            });
        CHECK(pool.stats().threads <= 2);
    }
    poll_until(ctx, [&] { return done == jobs; });
    CHECK(peak.load() <= 2);
    CHECK(pool.stats().completed == jobs);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "work that blocks grows the pool to max, one worker after another") {
    // Workers start one at a time; each starts the next while the backlog outlasts its start,
    // so jobs that all block still get a worker each.
    corio::thread_pool& pool = ctx.pool();
    constexpr int jobs = 6;
    pool.set_limits(0, jobs);
    gate blocked;
    int done = 0;
    for (int i = 0; i < jobs; ++i) {
        pool.submit([&] { blocked.wait(); }, [&](result<void>) { ++done; });
    }
    while (blocked.waiting.load() < jobs) std::this_thread::sleep_for(100us);
    CHECK(pool.stats().threads == jobs);
    CHECK(pool.stats().running == jobs);
    blocked.open = true;
    poll_until(ctx, [&] { return done == jobs; });
}

TEST_CASE_FIXTURE(loop_fixture, "workers beyond min retire after the idle timeout") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_idle_timeout(20ms);
    pool.set_limits(1, 4);
    gate g;
    int done = 0;
    for (int i = 0; i < 4; ++i) pool.submit([&] { g.wait(); }, [&](result<void>) { ++done; });
    while (g.waiting.load() < 4) std::this_thread::sleep_for(100us);
    CHECK(pool.stats().threads == 4);  // all busy: each job got a worker
    g.open = true;
    poll_until(ctx, [&] { return done == 4; });
    while (pool.stats().threads > 1) std::this_thread::sleep_for(1ms);  // watchdog-bounded
    CHECK(pool.stats().threads == 1);
}

TEST_CASE_FIXTURE(loop_fixture, "lowering max retires surplus workers after their current job") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_limits(4, 4);
    CHECK(pool.stats().threads == 4);
    pool.set_limits(0, 1);
    while (pool.stats().threads > 1) std::this_thread::sleep_for(1ms);
    int done = 0;
    for (int i = 0; i < 10; ++i) pool.submit([] {}, [&](result<void>) { ++done; });
    poll_until(ctx, [&] { return done == 10; });
    CHECK(pool.stats().threads <= 1);
}

TEST_CASE_FIXTURE(loop_fixture, "queued work cancelled by a stop request never runs") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_limits(0, 1);
    gate g;
    bool first_done = false;
    pool.submit([&] { g.wait(); }, [&](result<void>) { first_done = true; });
    while (g.waiting.load() < 1) std::this_thread::sleep_for(100us);
    std::atomic<bool> ran{false};
    std::optional<result<int>> got;
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    pool.submit(
        [&] {
            ran = true;
            return 1;
        },
        [&](result<int> r) { got = r; }, token);
    CHECK(pool.stats().queued == 1);
    std::thread([&] { stop.request_stop(); }).join();  // from another thread
    poll_until(ctx, [&] { return got.has_value(); });
    CHECK(got->error() == std::errc::operation_canceled);
    CHECK(pool.stats().queued == 0);
    g.open = true;
    poll_until(ctx, [&] { return first_done; });
    CHECK_FALSE(ran.load());
    CHECK(pool.stats().cancelled == 1);
}

TEST_CASE_FIXTURE(loop_fixture, "a stop requested before submission cancels without running") {
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    stop.request_stop();
    std::atomic<bool> ran{false};
    std::optional<result<void>> got;
    ctx.pool().submit([&] { ran = true; }, [&](result<void> r) { got = r; }, token);
    poll_until(ctx, [&] { return got.has_value(); });
    CHECK(got->error() == std::errc::operation_canceled);
    CHECK_FALSE(ran.load());
    CHECK(ctx.pool().stats().cancelled == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "work that requests its own stop while running never delivers its result") {
    // The stop callback must be registered before a worker can take the job: registered after
    // it, a worker that ran the whole job first left the request unseen and the value was
    // delivered. Batches of jobs keep several workers awake, which makes that likely.
    corio::thread_pool& pool = ctx.pool();
    pool.set_limits(8, 8);
    constexpr int batches = 250;
    constexpr int batch = 8;
    int values = 0;
    int cancelled = 0;
    for (int i = 0; i < batches; ++i) {
        for (int j = 0; j < batch; ++j) {
            std::stop_source stop = corio::test::new_stop_source();
            pool.submit(
                [stop] {
                    stop.request_stop();
                    return 1;
                },
                [&](result<int> r) { ++(r ? values : cancelled); }, stop.get_token());
        }
        poll_until(ctx, [&] { return values + cancelled == (i + 1) * batch; });
    }
    CHECK(values == 0);
    CHECK(cancelled == batches * batch);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "running work cancelled: ECANCELED once it ends, the result destroyed unseen") {
    gate g;
    auto destroyed = std::make_shared<std::atomic<int>>(0);
    int completions = 0;
    std::optional<result<tracked>> got;
    std::stop_source stop = corio::test::new_stop_source();
    const std::stop_token token = stop.get_token();
    ctx.pool().submit(
        [&] {
            g.wait();
            return tracked(destroyed);
        },
        [&](result<tracked> r) {
            ++completions;
            got.emplace(std::move(r));
        },
        token);
    while (g.waiting.load() < 1) std::this_thread::sleep_for(100us);
    stop.request_stop();
    for (int i = 0; i < 10; ++i) ctx.poll(false);
    CHECK_FALSE(got.has_value());  // the work is blocked on the gate: nothing to report yet
    g.open = true;
    poll_until(ctx, [&] { return got.has_value(); });
    CHECK(got->error() == std::errc::operation_canceled);
    CHECK(destroyed->load() > 0);
    ctx.poll(false);
    CHECK(completions == 1);
    CHECK(ctx.pool().stats().cancelled == 1);
}

TEST_CASE("destroying the context drops queued work and waits for running work") {
    corio::test::watchdog guard("context destruction with pool work");
    gate g;
    std::atomic<bool> job_ended{false};
    std::atomic<bool> second_ran{false};
    bool any_completion = false;
    auto destroyed = std::make_shared<std::atomic<int>>(0);
    std::thread opener;
    {
        context ctx;
        ctx.pool().set_limits(0, 1);
        ctx.pool().submit(
            [&] {
                g.wait();
                job_ended = true;
                return tracked(destroyed);
            },
            [&](result<tracked>) { any_completion = true; });
        ctx.pool().submit([&] { second_ran = true; }, [&](result<void>) { any_completion = true; });
        while (g.waiting.load() < 1) std::this_thread::sleep_for(100us);
        // Not ordering: whether the job is still blocked when the destructor starts does not
        // change the outcome of a destructor that waits. The delay keeps the job running for
        // 5 ms after the destructor's start, so that one that did not wait would return first.
        opener = std::thread([&] {
            std::this_thread::sleep_for(5ms);
            g.open = true;
        });
    }
    const bool ended_before_destructor_returned = job_ended.load();
    opener.join();
    CHECK(ended_before_destructor_returned);  // the destructor waited for the running job
    CHECK_FALSE(second_ran.load());
    CHECK_FALSE(any_completion);
    CHECK(destroyed->load() >= 1);  // the dropped result was destroyed (ASan: nothing leaked)
}

TEST_CASE("submitting from another thread aborts with the context's name") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx{corio::context_options{corio::backend_kind::automatic, "pool-ctx"}};
        static corio::thread_pool& pool = ctx.pool();
        std::thread([] { pool.submit([] {}, [](result<void>) {}); }).join();
    });
    CHECK(msg.find("pool-ctx") != std::string::npos);
    CHECK(msg.find("home thread") != std::string::npos);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "stress: 10k jobs, random cancellations, limit changes under load") {
    corio::thread_pool& pool = ctx.pool();
    pool.set_idle_timeout(1ms);
    constexpr int jobs = 10000;
    std::mt19937 rng(12345);
    std::atomic<int> ran{0};
    int ok = 0;
    int cancelled = 0;
    std::vector<std::unique_ptr<std::stop_source>> sources;
    std::vector<std::stop_source*> to_cancel;
    for (int i = 0; i < jobs; ++i) {
        if (i % 1000 == 0) {
            const int min = static_cast<int>(rng() % 3);
            pool.set_limits(min, min + 1 + static_cast<int>(rng() % 6));
        }
        auto& src = sources.emplace_back(std::make_unique<std::stop_source>());
        // Some are stopped before they are submitted (they never run), the others at random
        // moments from another thread.
        if (rng() % 8 == 0) src->request_stop();
        pool.submit(
            [&ran, i] {
                ran.fetch_add(1);
                return i;
            },
            [&ok, &cancelled, i](result<int> r) {
                if (r) {
                    CHECK(*r == i);
                    ++ok;
                } else {
                    CHECK(r.error() == std::errc::operation_canceled);
                    ++cancelled;
                }
            },
            src->get_token());
        if (rng() % 4 == 0) to_cancel.push_back(src.get());
        if (i % 64 == 0) {
            // Cancel from another thread while workers run, then let completions drain.
            std::thread canceller([batch = std::move(to_cancel)] {
                for (auto* s : batch) s->request_stop();
            });
            to_cancel.clear();
            while (ctx.poll(false)) {
            }
            canceller.join();
        }
    }
    for (auto* s : to_cancel) s->request_stop();
    poll_until(ctx, [&] { return ok + cancelled == jobs; });
    const corio::thread_pool_stats st = pool.stats();
    CHECK(st.queued == 0);
    CHECK(st.running == 0);
    CHECK(static_cast<int>(st.completed) == ran.load());
    CHECK(static_cast<int>(st.cancelled) == cancelled);
    CHECK(ok + cancelled == jobs);
    CHECK(ok > 0);
    CHECK(cancelled > 0);
}
