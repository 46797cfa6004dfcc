// when_any and task-level cancellation: the first task to finish wins, the others are cancelled
// for real (timers, fd handlers, io_uring requests) and awaited; a spawned task's own stop token
// cancels whatever it awaits; when_all and when_any hand the caller's cancellation on.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/when_all.hpp>
#include <corio/when_any.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

using corio::clock_type;
using corio::context;
using corio::result;
using corio::task;
using corio::test::loop_fixture;
using corio::test::test_pipe;
using namespace std::chrono_literals;

namespace {

// Sleeps on the manual clock until `at`; logs "<name>:ok" or "<name>:<error>" and returns
// `value` either way.
task<int> nap(std::int64_t at, std::vector<std::string>& log, std::string name, int value) {
    const result<void> r = co_await corio::sleep_until(clock_type::manual, at);
    log.push_back(name + (r ? ":ok" : ":" + r.error().message()));
    co_return value;
}

// Waits for a byte on `fd`; logs how the read ended.
task<std::string> reader(int fd, std::vector<std::string>& log) {
    std::byte b{};
    const result<std::size_t> r = co_await corio::read(fd, std::span(&b, 1));
    log.push_back(r ? "read:ok" : "read:" + r.error().message());
    co_return "reader";
}

std::string canceled() {
    return std::make_error_code(std::errc::operation_canceled).message();
}

// Drives the manual clock forward in `step`s until `done()`.
template <class Done>
void tick_until(context& ctx, std::chrono::nanoseconds step, Done done) {
    while (!done()) {
        ctx.poll(false);
        if (done()) break;
        ctx.advance_manual_clock(step);
    }
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "when_any returns the first to finish and cancels the others") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<int> {
        auto v = co_await corio::when_any(nap(t + 30, l, "slow", 1), nap(t + 10, l, "fast", 2),
                                          nap(t + 20, l, "middle", 3));
        l.push_back("returned");
        CHECK(v.index() == 1);
        co_return std::get<1>(v);
    }(log, t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    CHECK(h.get() == 2);
    // The losers saw ECANCELED (in no particular order) before when_any returned, and never
    // slept to their deadlines.
    REQUIRE(log.size() == 4);
    CHECK(log[0] == "fast:ok");
    std::sort(log.begin() + 1, log.begin() + 3);
    CHECK(log[1] == "middle:" + canceled());
    CHECK(log[2] == "slow:" + canceled());
    CHECK(log[3] == "returned");
}

TEST_CASE_FIXTURE(loop_fixture, "when_any cancels a loser blocked in real I/O") {
    test_pipe p;
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(
        ctx, [](int fd, std::vector<std::string>& l, std::int64_t t) -> task<std::size_t> {
            auto v = co_await corio::when_any(reader(fd, l), nap(t + 10, l, "timer", 7));
            co_return v.index();
        }(p.rd, log, t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    CHECK(h.get() == 1);
    CHECK(log == std::vector<std::string>{"timer:ok", "read:" + canceled()});
    // Nothing is left reading the pipe: a byte written now stays there.
    p.put();
    ctx.poll(false);
    CHECK(p.drain() == 1);
}

TEST_CASE_FIXTURE(loop_fixture, "when_any rethrows the winner's exception after the losers ended") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h =
        corio::spawn(ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<std::string> {
            try {
                (void)co_await corio::when_any(
                    [](std::int64_t at) -> task<void> {
                        (void)co_await corio::sleep_until(clock_type::manual, at);
                        throw std::runtime_error("winner failed");
                    }(t + 10),
                    nap(t + 20, l, "loser", 1));
            } catch (const std::runtime_error& e) {
                co_return e.what();
            }
            co_return "no exception";
        }(log, t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    CHECK(h.get() == "winner failed");
    CHECK(log == std::vector<std::string>{"loser:" + canceled()});
}

TEST_CASE_FIXTURE(loop_fixture, "a loser's exception is discarded, not reported") {
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(ctx, [](std::int64_t t) -> task<int> {
        std::vector<std::string> l;
        auto v =
            co_await corio::when_any(nap(t + 10, l, "winner", 5), [](std::int64_t at) -> task<int> {
                (void)co_await corio::sleep_until(clock_type::manual, at);
                throw std::runtime_error("loser failed");
            }(t + 20));
        co_return std::get<0>(v);
    }(t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    CHECK(h.get() == 5);
}

TEST_CASE_FIXTURE(loop_fixture, "when_any over a vector returns the winner's index") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(
        ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<std::pair<std::size_t, int>> {
            std::vector<task<int>> tasks;
            for (int i = 0; i < 5; ++i)
                tasks.push_back(nap(t + 10 * (5 - i), l, std::to_string(i), i * 10));
            co_return co_await corio::when_any(std::move(tasks));
        }(log, t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    const auto [index, value] = h.get();
    CHECK(index == 4);
    CHECK(value == 40);
    CHECK(log.size() == 5);
    CHECK(log[0] == "4:ok");
}

TEST_CASE_FIXTURE(loop_fixture, "when_all over a vector returns the values in order") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    auto h = corio::spawn(
        ctx, [](std::vector<std::string>& l, std::int64_t t) -> task<std::vector<int>> {
            std::vector<task<int>> tasks;
            for (int i = 0; i < 4; ++i)
                tasks.push_back(nap(t + 10 * (4 - i), l, std::to_string(i), i));
            co_return co_await corio::when_all(std::move(tasks));
        }(log, t0));
    tick_until(ctx, 10ns, [&] { return h.done(); });
    CHECK(h.get() == std::vector<int>{0, 1, 2, 3});
    CHECK(log == std::vector<std::string>{"3:ok", "2:ok", "1:ok", "0:ok"});
}

TEST_CASE_FIXTURE(loop_fixture, "a spawned task's stop token cancels what it awaits") {
    test_pipe p;
    corio::test::remote_stop stop{ctx};
    auto h = corio::spawn(
        ctx,
        [](int fd, std::atomic<bool>& armed) -> task<std::string> {
            CHECK(corio::current_stop_token().stop_possible());
            std::byte b{};
            armed.store(true);
            const result<std::size_t> r = co_await corio::read(fd, std::span(&b, 1));
            CHECK(corio::current_stop_token().stop_requested());
            co_return r ? "read" : r.error().message();
        }(p.rd, stop.armed),
        "reader", stop.token());
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get() == canceled());
}

TEST_CASE_FIXTURE(loop_fixture, "an operation started after the stop request is not attempted") {
    test_pipe p;
    p.put();  // the read could complete at once: it must not
    std::stop_source source;
    source.request_stop();
    auto h = corio::spawn(
        ctx,
        [](int fd) -> task<std::string> {
            std::byte b{};
            const result<std::size_t> r = co_await corio::read(fd, std::span(&b, 1));
            const result<void> s = co_await corio::sleep_for(0ns);
            co_return (r ? "read" : r.error().message()) + "/" +
                (s ? "slept" : s.error().message());
        }(p.rd),
        "late", source.get_token());
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get() == canceled() + "/" + canceled());
    CHECK(p.drain() == 1);  // the byte is still there
}

TEST_CASE_FIXTURE(loop_fixture,
                  "cancelling the caller cancels every task of when_any and when_all") {
    std::vector<std::string> log;
    const std::int64_t t0 = ctx.now(clock_type::manual);
    std::stop_source source;
    auto h = corio::spawn(
        ctx,
        [](std::vector<std::string>& l, std::int64_t t) -> task<void> {
            (void)co_await corio::when_all(
                [](std::vector<std::string>& l2, std::int64_t t2) -> task<void> {
                    (void)co_await corio::when_any(nap(t2 + 100, l2, "any1", 1),
                                                   nap(t2 + 200, l2, "any2", 2));
                }(l, t),
                nap(t + 300, l, "all", 3));
        }(log, t0),
        "caller", source.get_token());
    ctx.poll(false);
    ctx.poll(false);
    ctx.poll(false);
    source.request_stop();
    ctx.run_until([&] { return h.done(); });
    h.get();
    REQUIRE(log.size() == 3);
    for (const auto& entry : log) CHECK(entry.ends_with(":" + canceled()));
}

TEST_CASE_FIXTURE(loop_fixture, "a stop request from another thread ends a when_any") {
    test_pipe a;
    test_pipe b;
    corio::test::remote_stop stop{ctx};
    std::vector<std::string> log;
    auto h = corio::spawn(
        ctx,
        [](int fa, int fb, std::vector<std::string>& l, std::atomic<bool>& armed) -> task<void> {
            armed.store(true);
            (void)co_await corio::when_any(reader(fa, l), reader(fb, l));
        }(a.rd, b.rd, log, stop.armed),
        "two readers", stop.token());
    ctx.run_until([&] { return h.done(); });
    h.get();
    CHECK(log == std::vector<std::string>{"read:" + canceled(), "read:" + canceled()});
}

TEST_CASE("when_any of an empty vector aborts with a message") {
    const std::string message = corio::test::abort_message_of([] {
        context ctx;
        corio::run(ctx, []() -> task<void> {
            (void)co_await corio::when_any(std::vector<task<int>>{});
        }());
    });
    CHECK(message.find("when_any() of an empty vector of tasks") != std::string::npos);
}

TEST_CASE_FIXTURE(loop_fixture, "close and shutdown still run in a cancelled coroutine") {
    // Cleanup after a stop request must happen: a skipped close would leak the fd.
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    std::stop_source source;
    source.request_stop();
    auto h = corio::spawn(
        ctx,
        [](int a, int b) -> task<std::string> {
            const result<int> s = co_await corio::shutdown(a, SHUT_RDWR);
            const result<int> c1 = co_await corio::close(a);
            const result<int> c2 = co_await corio::close(b);
            co_return std::string(s ? "ok" : s.error().message()) + "/" +
                (c1 ? "ok" : c1.error().message()) + "/" + (c2 ? "ok" : c2.error().message());
        }(fds[0], fds[1]),
        "cleanup", source.get_token());
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get() == "ok/ok/ok");
    CHECK(::fcntl(fds[0], F_GETFD) == -1);  // both closed for real
    CHECK(::fcntl(fds[1], F_GETFD) == -1);
}
