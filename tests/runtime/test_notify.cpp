// The notify_me / notified protocol and poll()'s progress value.
#include "support/loop_fixture.hpp"

#include <doctest/doctest.h>

#include <corio/error.hpp>
#include <corio/fmt.hpp>

#include <fcntl.h>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

using corio::context;
using corio::test::loop_fixture;

TEST_CASE_FIXTURE(loop_fixture, "a non-blocking poll with nothing to do makes no progress") {
    CHECK_FALSE(ctx.poll(false));
    CHECK(ctx.compute_timeout() == -1);
}

TEST_CASE_FIXTURE(loop_fixture, "a blocking poll woken only by notify returns false") {
    // The helper keeps notifying until the poll returns, whether it came before or during it.
    std::atomic<bool> returned{false};
    std::thread t([&] {
        while (!returned.load()) {
            ctx.notify();
            std::this_thread::yield();
        }
    });
    CHECK_FALSE(ctx.poll(true));
    returned.store(true);
    t.join();
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a notify before the poll keeps the next blocking poll from sleeping") {
    ctx.notify();
    CHECK_FALSE(ctx.poll(true));  // returns instead of sleeping forever (the watchdog)
}

TEST_CASE_FIXTURE(loop_fixture,
                  "notify costs no eventfd write when the loop is not about to block") {
    corio::test::test_pipe p;  // an fd handler makes poll(false) call the backend
    ctx.add_fd_handler(p.rd, {.read = [](void*) {}}, nullptr);
    for (int i = 0; i < 100; ++i) ctx.notify();
    const auto before = ctx.stats();
    CHECK_FALSE(ctx.poll(false));
    const auto after = ctx.stats();
    CHECK(after.backend_waits == before.backend_waits + 1);
    CHECK(after.wakeups == before.wakeups);  // the eventfd was never written
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "notify from another thread always wakes a blocked poll (100k times)") {
    // Ping-pong: the helper publishes a request and notifies; the loop answers. A single lost
    // wake-up leaves poll(true) asleep forever, which the watchdog reports.
    constexpr int rounds = 100000;
    std::atomic<int> request{0};
    std::atomic<int> answered{0};
    std::thread helper([&] {
        for (int i = 1; i <= rounds; ++i) {
            request.store(i, std::memory_order_release);
            ctx.notify();
            while (answered.load(std::memory_order_acquire) != i) {
            }
        }
    });
    for (int i = 1; i <= rounds; ++i) {
        while (request.load(std::memory_order_acquire) != i) ctx.poll(true);
        answered.store(i, std::memory_order_release);
    }
    helper.join();
    CHECK(answered.load() == rounds);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a BH scheduled from another thread wakes a blocked poll (20k times)") {
    constexpr int rounds = 20000;
    std::atomic<int> runs{0};
    corio::bottom_half bh = ctx.make_bh([&] { runs.fetch_add(1, std::memory_order_release); });
    std::thread helper([&] {
        for (int i = 1; i <= rounds; ++i) {
            bh.schedule();
            while (runs.load(std::memory_order_acquire) != i) {
            }
        }
    });
    for (int i = 1; i <= rounds; ++i) {
        while (runs.load(std::memory_order_relaxed) != i) ctx.poll(true);
    }
    helper.join();
    CHECK(runs.load() == rounds);
}

TEST_CASE_FIXTURE(loop_fixture, "stop from another thread ends run()") {
    std::thread t([&] { ctx.stop(); });
    ctx.run();
    t.join();
    // The request was consumed: a new run() needs a new stop().
    corio::bottom_half stopper = ctx.make_bh([&] { ctx.stop(); });
    stopper.schedule();
    ctx.run();
}

TEST_CASE_FIXTURE(loop_fixture, "run_until checks its predicate before every iteration") {
    int runs = 0;
    corio::bottom_half bh;
    bh = ctx.make_bh([&] {
        if (++runs < 5) bh.schedule();
    });
    bh.schedule();
    ctx.run_until([&] { return runs == 5; });
    CHECK(runs == 5);
    ctx.run_until([] { return true; });  // returns at once
}

TEST_CASE(
    "current() is the polling context inside callbacks, the main context on the main thread") {
    context a;
    context* seen = nullptr;
    a.post([&] { seen = context::current(); });
    a.poll(false);
    CHECK(seen == &a);
    CHECK(context::current() == &corio::main_context());
    context* other = &a;
    std::thread([&] { other = context::current(); }).join();
    CHECK(other == nullptr);
}

TEST_CASE("nested polls of two contexts restore the current context") {
    context outer;
    context inner;
    context* during = nullptr;
    context* after = nullptr;
    outer.post([&] {
        inner.post([&] { during = context::current(); });
        inner.poll(false);
        after = context::current();
    });
    outer.poll(false);
    CHECK(during == &inner);
    CHECK(after == &outer);
}

TEST_CASE("poll off the home thread aborts with the context's name") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx{corio::context_options{corio::backend_kind::automatic, "homebound"}};
        std::thread([] { ctx.poll(false); }).join();
    });
    CHECK(msg.find("homebound") != std::string::npos);
}

TEST_CASE("an unknown CORIO_BACKEND is a clear error at context creation") {
    const char* saved = std::getenv("CORIO_BACKEND");
    const std::string keep = saved ? saved : "";
    setenv("CORIO_BACKEND", "kqueue", 1);
    try {
        context ctx;
        FAIL("context created with CORIO_BACKEND=kqueue");
    } catch (const corio::error& e) {
        CHECK(e.code().value() == EINVAL);
        CHECK(std::string(e.what()).find("kqueue") != std::string::npos);
    }
    if (saved) {
        setenv("CORIO_BACKEND", keep.c_str(), 1);
    } else {
        unsetenv("CORIO_BACKEND");
    }
}

TEST_CASE("an explicitly chosen backend wins over CORIO_BACKEND") {
    for (auto kind : {corio::backend_kind::epoll, corio::backend_kind::poll}) {
        context ctx{corio::context_options{kind, "forced"}};
        CHECK(ctx.backend() == kind);
        int runs = 0;
        ctx.post([&] { ++runs; });
        ctx.poll(true);
        CHECK(runs == 1);
    }
}

TEST_CASE("every fd a context opens is close-on-exec") {
    // Count fds without FD_CLOEXEC before and after creating a context.
    auto inheritable = [] {
        int n = 0;
        for (int fd = 0; fd < 1024; ++fd) {
            const int flags = fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC)) ++n;
        }
        return n;
    };
    const int before = inheritable();
    context ctx;
    CHECK(inheritable() == before);
}

TEST_CASE_FIXTURE(loop_fixture, "stats are readable, printable with to_string and with fmt") {
    ctx.post([] {});
    ctx.poll(false);
    const corio::context_stats s = ctx.stats();
    CHECK(s.bh_runs == 1);
    CHECK(s.iterations == 1);
    const std::string text = fmt::format("{}", s);
    CHECK(text.find("bh_runs=1") != std::string::npos);
    CHECK(text.find("iterations=1") != std::string::npos);
    CHECK(text.find("poll_hits=0") != std::string::npos);
    CHECK(text.find("poll_ns=0") != std::string::npos);
    CHECK(corio::to_string(s) == text);
}

TEST_CASE_FIXTURE(loop_fixture, "has_io_uring tells whether add_sqe is available") {
    CHECK(ctx.has_io_uring() == (ctx.backend() == corio::backend_kind::io_uring));
}

TEST_CASE("add_sqe on a context without io_uring aborts with a clear message") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx{corio::context_options{corio::backend_kind::epoll, "no-uring"}};
        static corio::cqe_handler h;
        ctx.add_sqe([](io_uring_sqe*, void*) {}, nullptr, &h);
    });
    CHECK(msg.find("add_sqe") != std::string::npos);
    CHECK(msg.find("has_io_uring") != std::string::npos);
}
