// task<T>: laziness, values, exceptions, symmetric transfer depth, frame lifetime and recycling.
#include "support/loop_fixture.hpp"

#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using corio::task;
using corio::test::loop_fixture;

namespace {

// Counts live instances, to prove what a frame owns is destroyed with it.
struct counted {
    static inline int alive = 0;
    counted() { ++alive; }
    counted(const counted&) { ++alive; }
    counted(counted&&) noexcept { ++alive; }
    ~counted() { --alive; }
};

task<int> forty_two() {
    co_return 42;
}

task<int> add(int a, int b) {
    co_return a + co_await forty_two() - 42 + b;
}

task<void> thrower() {
    throw std::runtime_error("from a task");
    co_return;
}

task<std::string> catches() {
    try {
        co_await thrower();
    } catch (const std::runtime_error& e) {
        co_return std::string("caught: ") + e.what();
    }
    co_return "not thrown";
}

task<long> nested(long depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

task<int> owns(counted c, int* started) {
    ++*started;
    (void)c;
    co_return 1;
}

task<std::unique_ptr<int>> move_only() {
    co_return std::make_unique<int>(7);
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a task returns its value to the awaiter") {
    CHECK(corio::run(ctx, forty_two()) == 42);
    CHECK(corio::run(ctx, add(1, 2)) == 3);
    CHECK(*corio::run(ctx, move_only()) == 7);
}

TEST_CASE_FIXTURE(loop_fixture, "an exception propagates through co_await to the awaiter") {
    CHECK(corio::run(ctx, catches()) == "caught: from a task");
    CHECK_THROWS_WITH_AS(corio::run(ctx, thrower()), "from a task", std::runtime_error);
}

TEST_CASE("a task is lazy and a destroyed never-started task frees its frame") {
    int started = 0;
    {
        task<int> t = owns(counted{}, &started);
        CHECK(t.valid());
        CHECK(started == 0);
        CHECK(counted::alive == 1);  // the parameter copy lives in the frame
    }
    CHECK(started == 0);
    CHECK(counted::alive == 0);
}

TEST_CASE_FIXTURE(loop_fixture, "a finished task's frame and parameters are freed once awaited") {
    int started = 0;
    CHECK(corio::run(ctx, owns(counted{}, &started)) == 1);
    CHECK(started == 1);
    CHECK(counted::alive == 0);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizer instrumentation keeps GCC from turning symmetric transfer into a tail call, so each
// nesting level costs stack there (see task.hpp); the full depth is checked by the plain build.
constexpr long nesting_depth = 2'000;
#else
constexpr long nesting_depth = 1'000'000;
#endif

TEST_CASE_FIXTURE(loop_fixture, "a million nested co_awaits run in constant stack") {
    CHECK(corio::run(ctx, nested(nesting_depth)) == nesting_depth);
}

TEST_CASE("awaiting a moved-from task aborts with a clear message") {
    const std::string msg = corio::test::abort_message_of([] {
        static corio::context ctx;
        corio::run(ctx, []() -> task<void> {
            task<int> t = forty_two();
            task<int> other = std::move(t);
            (void)co_await std::move(t);
        }());
    });
    CHECK(msg.find("empty task") != std::string::npos);
}

TEST_CASE("frames are recycled per thread and may be freed on another thread") {
    // Tasks created here and destroyed (never started) on another thread, then the reverse:
    // the blocks move between the threads' caches; AddressSanitizer checks every access.
    std::vector<task<int>> made;
    for (int i = 0; i < 1000; ++i) made.push_back(forty_two());
    std::thread([m = std::move(made)]() mutable { m.clear(); }).join();
    std::vector<task<int>> from_other;
    std::thread([&] {
        for (int i = 0; i < 1000; ++i) from_other.push_back(forty_two());
    }).join();
    corio::context ctx;
    int sum = 0;
    for (auto& t : from_other) sum += corio::run(ctx, std::move(t));
    CHECK(sum == 42 * 1000);
}
