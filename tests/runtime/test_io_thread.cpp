// io_thread: a named thread owning its context; cross-thread posts, coroutines moving between
// IO threads, graceful stop (drain) and construction errors.
#include "support/loop_fixture.hpp"

#include <corio/error.hpp>
#include <corio/io_thread.hpp>
#include <corio/schedule.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <sys/syscall.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <future>
#include <string>
#include <thread>

using corio::context;
using corio::io_thread;
using corio::task;
using corio::test::loop_fixture;

namespace {

// Runs `fn` on `t`'s loop and returns its result (blocking the caller).
template <class Fn>
auto on(io_thread& t, Fn fn) {
    std::promise<decltype(fn())> p;
    auto f = p.get_future();
    t.get_context().post([&] { p.set_value(fn()); }, "on");
    return f.get();
}

std::string comm_of(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
}

// std::this_thread::get_id() through a call the compiler cannot see into: a coroutine that
// moves between threads must not have it folded across a co_await.
[[gnu::noinline]] std::thread::id thread_now() {
    std::thread::id id = std::this_thread::get_id();
    asm volatile("" : "+m"(id));
    return id;
}

}  // namespace

TEST_CASE("an io_thread runs its own context, on itself, under its name") {
    corio::test::watchdog guard("io_thread basics");
    io_thread t("corio-test-io-thread-long-name");
    CHECK(t.name() == "corio-test-io-thread-long-name");
    CHECK(t.get_context().name() == "corio-test-io-thread-long-name");
    CHECK_FALSE(t.get_context().is_home_thread());
    CHECK(on(t, [&] { return t.get_context().is_home_thread(); }));
    CHECK(on(t, [] { return std::this_thread::get_id(); }) == t.thread_id());
    CHECK(on(t, [] { return context::current(); }) == &t.get_context());
    const pid_t tid = on(t, [] { return static_cast<pid_t>(syscall(SYS_gettid)); });
    CHECK(comm_of(tid) == "corio-test-io-t");  // 15 characters: the kernel's limit
    if (const char* forced = std::getenv("CORIO_BACKEND")) {
        CHECK(corio::to_string(t.get_context().backend()) == forced);
    }
}

TEST_CASE("stop drains what was posted before it; the destructor stops and joins") {
    corio::test::watchdog guard("io_thread stop");
    std::atomic<int> ran{0};
    {
        io_thread t("drain");
        for (int i = 0; i < 100; ++i) t.get_context().post([&] { ran.fetch_add(1); });
        t.stop();
        t.join();
        CHECK(ran.load() == 100);
        t.stop();  // after join: nothing happens
        t.join();
    }
    io_thread u("destructor");
    u.get_context().post([&] { ran.fetch_add(1); });
    // ~io_thread: stop, drain, join
}

namespace {

// A one-shot that posts itself again until `left` runs out: a loop that never blocks.
void repost(context& ctx, std::atomic<int>& left) {
    if (left.fetch_sub(1) > 0) ctx.post([&ctx, &left] { repost(ctx, left); }, "busy");
}

}  // namespace

TEST_CASE("stop() is done with the context before a busy io_thread destroys it") {
    // A loop that never blocks sees the stop request without reading the eventfd, so it may
    // drain and destroy its context while stop() is still notifying it: stop() must keep the
    // context alive until it returns. ThreadSanitizer reports the use after free every time,
    // ASan when the timing lines up.
    corio::test::watchdog guard("stop of a busy io_thread");
    for (int i = 0; i < 20; ++i) {
        std::atomic<int> left{20000};
        io_thread t("busy");
        context& c = t.get_context();
        c.post([&c, &left] { repost(c, left); }, "busy");
        while (left.load() > 19000) std::this_thread::yield();
        t.stop();
        t.join();
    }
}

TEST_CASE("post() is done with the context before the posted work lets its owner destroy it") {
    // The posted function stops the loop, which then drains and destroys its context, possibly
    // while post() is still notifying it: post() must keep the context alive until it returns.
    corio::test::watchdog guard("post that ends an io_thread");
    for (int i = 0; i < 20; ++i) {
        std::atomic<int> left{20000};
        io_thread t("busy");
        context& c = t.get_context();
        c.post([&c, &left] { repost(c, left); }, "busy");
        while (left.load() > 19000) std::this_thread::yield();
        c.post([&c] { c.stop(); }, "stop");
        t.join();
    }
}

TEST_CASE("a context that cannot be set up makes the constructor throw") {
    corio::context_options bad;
    bad.polling.max_ns = -1;
    try {
        io_thread t("bad", bad);
        FAIL("no error");
    } catch (const corio::error& e) {
        CHECK(e.code().value() == EINVAL);
    }
}

TEST_CASE_FIXTURE(loop_fixture, "a coroutine moves between io_threads and back") {
    io_thread a("a");
    io_thread b("b");
    const auto home = std::this_thread::get_id();
    const int hops = corio::run(
        ctx, [](context& main, io_thread& ta, io_thread& tb, std::thread::id h) -> task<int> {
            int n = 0;
            for (int i = 0; i < 100; ++i) {
                co_await corio::reschedule_self{ta.get_context()};
                CHECK(thread_now() == ta.thread_id());
                CHECK(context::current() == &ta.get_context());
                co_await corio::reschedule_self{tb.get_context()};
                CHECK(thread_now() == tb.thread_id());
                co_await corio::reschedule_self{main};
                CHECK(thread_now() == h);
                ++n;
            }
            co_return n;
        }(ctx, a, b, home));
    CHECK(hops == 100);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "co_wake from an io_thread resumes the coroutine on its own context") {
    io_thread t("waker");
    const auto home = std::this_thread::get_id();
    const bool same = corio::run(ctx, [](io_thread& w, std::thread::id h) -> task<bool> {
        co_await corio::suspend([&](corio::coroutine co) {
            w.get_context().post([co] { corio::co_wake(co); }, "wake");
        });
        co_return thread_now() == h;
    }(t, home));
    CHECK(same);
}
