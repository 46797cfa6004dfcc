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

TEST_CASE("stop from another thread is done with the context before the thread destroys it") {
    // A busy loop (a post that re-posts itself) never blocks, so stop() writes no eventfd: the
    // io_thread sees the request, drains and destroys its context while stop() may still be
    // in notify(). Under ThreadSanitizer that is a reported race unless the context waits for
    // stop() to finish (ASan sees it as a use after free when the timing is right). The chain
    // ends 1000 runs after `stopping`, so that the drain ends too.
    corio::test::watchdog guard("io_thread stop while busy");
    struct repost {
        context* ctx;
        std::atomic<bool>* running;
        std::atomic<bool>* stopping;
        int* left;  // home thread only
        void operator()() const {
            running->store(true, std::memory_order_release);
            if (stopping->load(std::memory_order_acquire) && --*left == 0) return;
            ctx->post(*this, "repost");
        }
    };
    for (int i = 0; i < 20; ++i) {
        io_thread t("busy");
        std::atomic<bool> running{false};
        std::atomic<bool> stopping{false};
        int left = 1000;
        t.get_context().post(repost{&t.get_context(), &running, &stopping, &left}, "repost");
        while (!running.load(std::memory_order_acquire)) std::this_thread::yield();
        stopping.store(true, std::memory_order_release);
        t.stop();
        t.join();
        CHECK(left == 0);
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
