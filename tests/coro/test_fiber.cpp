// Fibers: stackful coroutines that are corio coroutines. A fiber awaits any awaitable from any
// call depth, yields and is woken by the aio_co_* primitives (from other coroutines and other
// threads), moves between contexts, carries exceptions both ways, recycles its stack, and dies
// on its guard page when it overflows. Misuse aborts with a message.
#include "support/loop_fixture.hpp"

#include <corio/fiber.hpp>
#include <corio/io.hpp>
#include <corio/io_thread.hpp>
#include <corio/schedule.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using corio::context;
using corio::coroutine;
using corio::task;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {

// std::this_thread::get_id() for code on a fiber that changes threads: pthread_self() is
// declared const, so within one function the compiler may reuse its value from before an
// await() (see the caveat in fiber.hpp). noipa keeps it from being inferred const in turn
// (clang has no noipa: an unoptimized, never-inlined function is opaque to it likewise).
#if defined(__clang__)
#define OPAQUE_TO_OPTIMIZER [[clang::optnone, gnu::noinline]]
#else
#define OPAQUE_TO_OPTIMIZER [[gnu::noipa]]
#endif
OPAQUE_TO_OPTIMIZER std::thread::id thread_now() {
    return std::this_thread::get_id();
}

// Suspends for real (until the next BH pass) before returning.
task<int> later(int value) {
    co_await corio::suspend([](coroutine self) { corio::co_schedule(*self.home(), self); });
    co_return value;
}

task<int> fails_later(const char* what) {
    co_await corio::suspend([](coroutine self) { corio::co_schedule(*self.home(), self); });
    throw std::runtime_error(what);
}

template <class T>
T run_to_end(context& ctx, corio::join_handle<T>& handle) {
    ctx.run_until([&] { return handle.done(); });
    return handle.get();
}

// An awaitable that is always ready: await_suspend must never be called.
struct ready_value {
    int value;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {
        corio::detail::misuse("await_suspend of a ready awaitable");
    }
    int await_resume() const noexcept { return value; }
};

// Recurses `depth` frames deep on the fiber's stack, then runs `at_bottom` there; every frame
// keeps a value live across the calls below it, so the frames are real and checked on return.
template <class Fn>
[[gnu::noinline]] long recurse(int depth, Fn& at_bottom) {
    volatile long mine = depth;  // lives in this frame across the call
    const long below = depth == 0 ? at_bottom() : recurse(depth - 1, at_bottom);
    return below + mine;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a fiber returns its function's value through the join handle") {
    bool ran = false;
    auto h = corio::spawn_fiber(ctx, [&] {
        ran = corio::in_fiber();
        return 42;
    });
    CHECK_FALSE(ran);  // started from the loop, as spawn does
    CHECK(run_to_end(ctx, h) == 42);
    CHECK(ran);
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber awaits tasks that suspend and gets their values") {
    auto h = corio::spawn_fiber(ctx, [] {
        int sum = 0;
        for (int i = 1; i <= 10; ++i) sum += corio::await(later(i));
        return sum;
    });
    CHECK(run_to_end(ctx, h) == 55);
}

TEST_CASE_FIXTURE(loop_fixture, "a ready awaitable is consumed on the fiber without switching") {
    auto h = corio::spawn_fiber(ctx, [] { return corio::await(ready_value{7}); });
    CHECK(run_to_end(ctx, h) == 7);
}

TEST_CASE_FIXTURE(loop_fixture, "await returns reference results as references") {
    // Suspends until the next BH pass, then returns `target` as an R (int& or int&&).
    struct rescheduled {
        void await_suspend(std::coroutine_handle<> h) const {
            corio::detail::co_state* self = corio::detail::require_coroutine("test awaiter");
            self->resume_point = h;
            self->reschedule_to = context::current();  // handed over once suspended
        }
    };
    struct lvalue_ref : rescheduled {
        int& target;
        bool await_ready() const noexcept { return false; }
        int& await_resume() const noexcept { return target; }
    };
    struct rvalue_ref : rescheduled {
        int& target;
        bool await_ready() const noexcept { return false; }
        int&& await_resume() const noexcept { return std::move(target); }
    };
    int value = 1;
    int* seen = nullptr;
    auto h = corio::spawn_fiber(ctx, [&] {
        int& r = corio::await(lvalue_ref{{}, value});
        r = 2;
        int&& rr = corio::await(rvalue_ref{{}, value});
        seen = &rr;
    });
    run_to_end(ctx, h);
    CHECK(value == 2);
    CHECK(seen == &value);
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber sleeps on the manual clock until it is advanced") {
    bool woke = false;
    auto h = corio::spawn_fiber(ctx, [&] {
        auto r = corio::await(corio::sleep_for(1000ns, corio::clock_type::manual));
        CHECK(static_cast<bool>(r));
        woke = true;
    });
    for (int i = 0; i < 3; ++i) ctx.poll(false);
    CHECK_FALSE(woke);
    ctx.advance_manual_clock(999ns);
    ctx.poll(false);
    CHECK_FALSE(woke);
    ctx.advance_manual_clock(1ns);
    run_to_end(ctx, h);
    CHECK(woke);
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber reads a pipe through corio::read") {
    corio::test::test_pipe p;
    auto h = corio::spawn_fiber(ctx, [&] {
        std::byte buf[16];
        auto n = corio::await(corio::read(p.rd, buf));
        REQUIRE(static_cast<bool>(n));
        return std::string(reinterpret_cast<const char*>(buf), *n);
    });
    for (int i = 0; i < 3; ++i) ctx.poll(false);
    CHECK_FALSE(h.done());  // nothing to read yet: the fiber is suspended in the loop
    p.put('a');
    CHECK(run_to_end(ctx, h) == "a");
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber awaits another fiber's join handle") {
    auto h = corio::spawn_fiber(ctx, [&] {
        auto inner = corio::spawn_fiber(ctx, [] { return corio::await(later(3)) * 2; });
        return corio::await(inner) + 1;
    });
    CHECK(run_to_end(ctx, h) == 7);
}

TEST_CASE_FIXTURE(loop_fixture, "a task awaits run_on_fiber as part of its own coroutine") {
    const int v = corio::run(ctx, []() -> task<int> {
        const coroutine outer = corio::current_fiber();  // a task is no fiber
        CHECK_FALSE(outer);
        CHECK_FALSE(corio::in_fiber());
        co_return co_await corio::run_on_fiber([] {
            CHECK(corio::in_fiber());
            return corio::await(later(20)) + 1;
        });
    }());
    CHECK(v == 21);
}

TEST_CASE_FIXTURE(loop_fixture, "a yielded fiber is resumed by co_wake from another coroutine") {
    std::vector<std::string> log;
    coroutine parked;
    auto f = corio::spawn_fiber(ctx, [&] {
        parked = corio::current_fiber();
        log.push_back("fiber yields");
        corio::fiber_yield();
        log.push_back("fiber resumed");
        return 1;
    });
    auto t = corio::spawn(ctx, [](coroutine& p, std::vector<std::string>& l) -> task<void> {
        while (!p) co_await corio::suspend([](coroutine self) { corio::co_wake(self); });
        l.push_back("task wakes");
        corio::co_wake(p);  // deferred: runs once this task has ended
        l.push_back("task ends");
        co_return;
    }(parked, log));
    CHECK(run_to_end(ctx, f) == 1);
    run_to_end(ctx, t);
    CHECK(log ==
          std::vector<std::string>{"fiber yields", "task wakes", "task ends", "fiber resumed"});
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber woken from another thread resumes on its home thread") {
    const auto here = std::this_thread::get_id();
    std::thread waker;
    auto h = corio::spawn_fiber(ctx, [&] {
        const coroutine self = corio::current_fiber();
        // The wake may come before the yield has finished: it takes effect after it.
        waker = std::thread([self] { corio::co_wake(self); });
        corio::fiber_yield();
        return std::this_thread::get_id();
    });
    CHECK(run_to_end(ctx, h) == here);
    waker.join();
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a fiber moves to another thread's context and back with reschedule_self") {
    corio::io_thread w("worker");
    context* other = &w.get_context();
    const auto here = std::this_thread::get_id();
    auto h = corio::spawn_fiber(ctx, [&] {
        std::vector<std::thread::id> seen;
        for (int round = 0; round < 20; ++round) {
            corio::await(corio::reschedule_self{*other});
            seen.push_back(thread_now());
            // Throwing and awaiting on the fiber's stack while on the other thread.
            try {
                throw std::runtime_error("there");
            } catch (const std::runtime_error& e) {
                seen.push_back(corio::await(later(round)) == round &&
                                       e.what() == std::string("there")
                                   ? thread_now()
                                   : std::thread::id());
            }
            corio::await(corio::reschedule_self{ctx});
            seen.push_back(thread_now());
        }
        return seen;
    });
    const auto seen = run_to_end(ctx, h);
    REQUIRE(seen.size() == 60);
    for (std::size_t i = 0; i < seen.size(); i += 3) {
        CHECK(seen[i] == w.thread_id());
        CHECK(seen[i + 1] == w.thread_id());
        CHECK(seen[i + 2] == here);
    }
}

TEST_CASE_FIXTURE(loop_fixture, "fibers that start on one thread can end on another") {
    // Their stacks go to the worker's pool, which is unmapped when the worker exits.
    std::vector<corio::join_handle<int>> handles;
    {
        corio::io_thread w("worker");
        context* other = &w.get_context();
        for (int i = 0; i < 10; ++i) {
            handles.push_back(corio::spawn_fiber(ctx, [other, i] {
                corio::await(corio::reschedule_self{*other});
                return corio::await(later(i));
            }));
        }
        // Spawned on the worker's context directly: mapped, run and released there.
        auto there = corio::spawn_fiber(*other, [] { return corio::await(later(100)); });
        // Joined from a task: the joiner is woken here when a fiber ends there.
        const int sum = corio::run(
            ctx,
            [](corio::join_handle<int>& t, std::vector<corio::join_handle<int>>& hs) -> task<int> {
                int total = co_await t;
                for (auto& h : hs) total += co_await h;
                co_return total;
            }(there, handles));
        CHECK(sum == 145);
    }
}

TEST_CASE_FIXTURE(loop_fixture, "an exception thrown by a fiber comes out of its join handle") {
    auto h = corio::spawn_fiber(ctx, []() -> int {
        corio::await(later(0));
        throw std::logic_error("fiber failure");
    });
    ctx.run_until([&] { return h.done(); });
    CHECK_THROWS_WITH_AS(h.get(), "fiber failure", std::logic_error);
}

TEST_CASE_FIXTURE(loop_fixture, "an exception from an awaited task is rethrown on the fiber") {
    auto h = corio::spawn_fiber(ctx, [] {
        std::string caught;
        try {
            corio::await(fails_later("task failure"));
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
        return caught + " / " + std::to_string(corio::await(later(1)));  // and it goes on
    });
    CHECK(run_to_end(ctx, h) == "task failure / 1");
}

TEST_CASE_FIXTURE(loop_fixture,
                  "fibers that suspend inside catch blocks keep their own exceptions") {
    // A and B each suspend while handling their own exception; A ends its handler first. The
    // exception being handled is per thread in the C++ runtime: without a per-fiber copy, A
    // would see B's exception and pop it, freeing it under B.
    coroutine a, b;
    auto handler = [](coroutine& self, const char* what) {
        return [&self, what] {
            try {
                throw std::runtime_error(what);
            } catch (const std::runtime_error&) {
                self = corio::current_fiber();
                corio::fiber_yield();
                try {
                    throw;  // the exception being handled, after the switch
                } catch (const std::runtime_error& again) {
                    return std::string(again.what()) + ":" +
                           std::to_string(std::uncaught_exceptions());
                }
            }
        };
    };
    auto fa = corio::spawn_fiber(ctx, handler(a, "A"));
    auto fb = corio::spawn_fiber(ctx, handler(b, "B"));
    ctx.run_until([&] { return a && b; });
    corio::co_wake(a);
    CHECK(run_to_end(ctx, fa) == "A:0");
    corio::co_wake(b);
    CHECK(run_to_end(ctx, fb) == "B:0");
}

TEST_CASE_FIXTURE(loop_fixture, "a fiber awaits, yields and throws from 1000 frames deep") {
    // 1 MiB: sanitizer builds use several times the stack per frame that plain builds do.
    const corio::fiber_options options{.stack_size = 1024 * 1024};
    coroutine parked;
    auto h = corio::spawn_fiber(
        ctx,
        [&] {
            auto bottom = [&]() -> long {
                parked = corio::current_fiber();
                corio::fiber_yield();
                return corio::await(later(1000));
            };
            const long sum = recurse(1000, bottom);  // 1000 + (1000 + 999 + ... + 0)
            auto thrower = []() -> long {
                volatile bool always = true;  // not visibly noreturn: the recursion ends here
                if (always) throw std::runtime_error("deep");
                return 0;
            };
            try {
                recurse(1000, thrower);
            } catch (const std::runtime_error& e) {
                return std::to_string(sum) + " " + e.what();
            }
            return std::string("no exception");
        },
        "deep", options);
    ctx.run_until([&] { return static_cast<bool>(parked); });
    corio::co_wake(parked);
    CHECK(run_to_end(ctx, h) == std::to_string(1000 + 1000 * 1001 / 2) + " deep");
}

TEST_CASE_FIXTURE(loop_fixture, "ten thousand fibers reuse pooled stacks") {
    constexpr int batch = 50;  // alive at once; within the per-thread pool
    constexpr int batches = 200;
    auto run_batch = [&] {
        std::vector<coroutine> parked(batch);
        std::vector<corio::join_handle<int>> handles;
        for (int i = 0; i < batch; ++i) {
            handles.push_back(corio::spawn_fiber(ctx, [&parked, i] {
                parked[static_cast<std::size_t>(i)] = corio::current_fiber();
                corio::fiber_yield();
                return i;
            }));
        }
        ctx.run_until([&] {
            for (const coroutine& c : parked)
                if (!c) return false;
            return true;
        });
        for (const coroutine& c : parked) corio::co_wake(c);
        int sum = 0;
        for (auto& h : handles) sum += run_to_end(ctx, h);
        CHECK(sum == batch * (batch - 1) / 2);
    };
    run_batch();
    const auto mapped = corio::detail::fiber_stacks_mapped();
    for (int i = 1; i < batches; ++i) run_batch();
    CHECK(corio::detail::fiber_stacks_mapped() == mapped);
}

TEST_CASE("a fiber destroyed while suspended unwinds its stack") {
    // Only reachable by destroying a driver that is suspended mid-fiber, which corio itself
    // never does; done here by hand through the task's awaiter.
    int destroyed = 0;
    struct counted {
        int& count;
        ~counted() { ++count; }
    };
    {
        auto t = corio::run_on_fiber([&] {
            counted on_stack{destroyed};
            corio::await(std::suspend_always{});  // nobody resumes it
            return 0;
        });
        auto awaiter = std::move(t).operator co_await();
        REQUIRE_FALSE(awaiter.await_ready());
        awaiter.await_suspend(std::noop_coroutine()).resume();  // runs until the fiber awaits
        CHECK(destroyed == 0);
        awaiter.h.destroy();
    }
    CHECK(destroyed == 1);
}

TEST_CASE("a fiber that overflows its stack dies on the guard page") {
    auto [status, out] = corio::test::run_in_child([] {
        std::signal(SIGSEGV, SIG_DFL);
        static context ctx;
        corio::run(ctx, corio::run_on_fiber(
                            [] {
                                struct endless {
                                    static long down(long n) {
                                        static volatile long limit = -1;  // never reached
                                        if (n == limit) return 0;
                                        volatile char pad[512];
                                        pad[0] = static_cast<char>(n);
                                        return down(n + 1) + pad[0];
                                    }
                                };
                                return endless::down(0);
                            },
                            corio::fiber_options{.stack_size = 64 * 1024}));
    });
    INFO(out);
    CHECK(status == 128 + SIGSEGV);
}

TEST_CASE("await and fiber_yield outside a fiber abort with a message") {
    std::string msg = corio::test::abort_message_of([] {
        static context ctx;
        corio::run(ctx, []() -> task<int> { co_return corio::await(later(1)); }());
    });
    CHECK(msg.find("corio::await() used outside a fiber") != std::string::npos);
    msg = corio::test::abort_message_of([] { corio::fiber_yield(); });
    CHECK(msg.find("corio::fiber_yield() used outside a fiber") != std::string::npos);
}

TEST_CASE("a stack size below the minimum aborts") {
    const std::string msg = corio::test::abort_message_of([] {
        static context ctx;
        (void)corio::spawn_fiber(
            ctx, [] {}, "tiny", corio::fiber_options{.stack_size = 4096});
    });
    CHECK(msg.find("stack_size below 16 KiB") != std::string::npos);
}

TEST_CASE("outside any fiber there is no current fiber") {
    CHECK_FALSE(corio::in_fiber());
    CHECK_FALSE(corio::current_fiber());
}
