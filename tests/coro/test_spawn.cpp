// spawn, join_handle and run: where tasks run, results, exceptions, detaching.
#include "support/loop_fixture.hpp"

#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

using corio::context;
using corio::task;
using corio::test::loop_fixture;

namespace {

task<std::thread::id> where() {
    co_return std::this_thread::get_id();
}

task<int> fail() {
    throw std::logic_error("spawned failure");
    co_return 0;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a spawned task starts from the loop, not inside spawn") {
    bool ran = false;
    auto h = corio::spawn(ctx, [](bool& r) -> task<int> {
        r = true;
        co_return 5;
    }(ran));
    CHECK_FALSE(ran);
    CHECK_FALSE(h.done());
    ctx.poll(false);
    CHECK(ran);
    CHECK(h.done());
    CHECK(h.get() == 5);
}

TEST_CASE_FIXTURE(loop_fixture, "a joiner awaits a spawned task's result and exception") {
    auto outcome = corio::run(ctx, [](context& c) -> task<std::string> {
        auto ok = corio::spawn(c, []() -> task<int> { co_return 7; }());
        auto bad = corio::spawn(c, fail());
        int v = co_await ok;
        try {
            co_await bad;
        } catch (const std::logic_error& e) {
            co_return std::to_string(v) + " " + e.what();
        }
        co_return "no exception";
    }(ctx));
    CHECK(outcome == "7 spawned failure");
}

TEST_CASE_FIXTURE(
    loop_fixture,
    "a task spawned onto another thread's context runs there and wakes its joiner here") {
    std::atomic<bool> stop{false};
    std::thread::id worker_id;
    std::atomic<context*> worker_ctx{nullptr};
    std::thread worker([&] {
        context other{corio::context_options{.name = "worker"}};
        worker_id = std::this_thread::get_id();
        worker_ctx.store(&other);
        other.run_until([&] { return stop.load(); });
        worker_ctx.store(nullptr);
    });
    while (!worker_ctx.load()) std::this_thread::yield();
    const std::thread::id ran_on = corio::run(ctx, [](context* w) -> task<std::thread::id> {
        co_return co_await corio::spawn(*w, where());
    }(worker_ctx.load()));
    CHECK(ran_on == worker_id);
    {
        // Published stop may let the worker destroy its context before notify() returns.
        context* other = worker_ctx.load();
        context::keep_alive alive(*other);
        stop.store(true);
        other->notify();
    }
    worker.join();
}

TEST_CASE("an exception nobody awaits is reported with the task's name") {
    auto [status, err] = corio::test::run_in_child([] {
        context ctx;
        {
            auto h = corio::spawn(ctx, fail(), "doomed-task");
            h.reset();  // detached before it ran
        }
        while (ctx.poll(false)) {
        }
    });
    CHECK(status == 0);
    CHECK(err.find("doomed-task") != std::string::npos);
    CHECK(err.find("spawned failure") != std::string::npos);
}

TEST_CASE("a task still queued when its context is destroyed is freed without running") {
    int runs = 0;
    {
        context ctx;
        auto h = corio::spawn(ctx, [](int& r) -> task<void> {
            ++r;
            co_return;
        }(runs));
        CHECK_FALSE(h.done());
    }
    CHECK(runs == 0);  // and LeakSanitizer sees no frame or state left
}
