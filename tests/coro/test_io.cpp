// I/O awaitables: readiness waits on every backend, their errors and their cancellation.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <stop_token>
#include <thread>
#include <tuple>
#include <vector>

using corio::context;
using corio::result;
using corio::task;
using corio::test::loop_fixture;
using corio::test::test_pipe;
using namespace std::chrono_literals;

TEST_CASE_FIXTURE(loop_fixture,
                  "wait_readable resumes once data arrives, and removes its handler") {
    test_pipe p;
    bool waiting = false;
    auto h = corio::spawn(ctx, [](int fd, bool& w) -> task<result<void>> {
        w = true;
        co_return co_await corio::wait_readable(fd);
    }(p.rd, waiting));
    ctx.poll(false);
    CHECK(waiting);
    CHECK_FALSE(h.done());
    CHECK(ctx.has_fd_handler(p.rd));
    std::thread([&] { p.put(); }).join();
    ctx.run_until([&] { return h.done(); });
    CHECK(h.get().ok());
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
}

TEST_CASE_FIXTURE(loop_fixture, "wait_writable on a writable fd resumes on the next iteration") {
    test_pipe p;
    const result<void> r = corio::run(ctx, [](int fd) -> task<result<void>> {
        co_return co_await corio::wait_writable(fd);
    }(p.wr));
    CHECK(r.ok());
}

TEST_CASE_FIXTURE(loop_fixture, "readiness errors are values: EBADF, EEXIST") {
    test_pipe p;
    int closed = dup(p.rd);
    close(closed);
    ctx.add_fd_handler(p.wr, {.write = [](void*) {}}, nullptr);
    auto [bad, closed_fd, busy] = corio::run(
        ctx, [](int wr, int gone) -> task<std::tuple<result<void>, result<void>, result<void>>> {
            result<void> a = co_await corio::wait_readable(-1);
            result<void> b = co_await corio::wait_readable(gone);
            result<void> c = co_await corio::wait_writable(wr);
            co_return std::tuple{a, b, c};
        }(p.wr, closed));
    CHECK(bad.error() == std::errc::bad_file_descriptor);
    CHECK(closed_fd.error() == std::errc::bad_file_descriptor);
    CHECK(busy.error() == std::errc::file_exists);
    CHECK(ctx.has_fd_handler(p.wr));  // the existing handler is untouched
    ctx.remove_fd_handler(p.wr);
}

TEST_CASE_FIXTURE(
    loop_fixture,
    "a readiness wait cancelled from another thread returns ECANCELED and unregisters") {
    test_pipe p;
    corio::test::remote_stop stop{ctx};
    const result<void> r =
        corio::run(ctx, [](int fd, std::stop_token st, std::atomic<bool>& w) -> task<result<void>> {
            w.store(true);
            co_return co_await corio::wait_readable(fd, st);
        }(p.rd, stop.token(), stop.armed));
    stop.join();
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
    p.put();  // a late event reaches nobody
    CHECK_FALSE(ctx.poll(false));
}

TEST_CASE_FIXTURE(loop_fixture, "a readiness wait with a stopped token does not register") {
    test_pipe p;
    std::stop_source stop;
    stop.request_stop();
    const result<void> r = corio::run(ctx, [](int fd, std::stop_token st) -> task<result<void>> {
        co_return co_await corio::wait_readable(fd, st);
    }(p.rd, stop.get_token()));
    CHECK(r.error() == std::errc::operation_canceled);
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
}

TEST_CASE_FIXTURE(loop_fixture, "many coroutines wait on many pipes and each wakes exactly once") {
    constexpr int count = 64;
    std::vector<std::unique_ptr<test_pipe>> pipes;
    std::vector<corio::join_handle<int>> handles;
    for (int i = 0; i < count; ++i) {
        pipes.push_back(std::make_unique<test_pipe>());
        handles.push_back(corio::spawn(ctx, [](test_pipe& pp) -> task<int> {
            int woke = 0;
            while (pp.drain() == 0) {
                if ((co_await corio::wait_readable(pp.rd)).ok()) ++woke;
            }
            co_return woke;
        }(*pipes.back())));
    }
    ctx.poll(false);
    for (int i = count - 1; i >= 0; --i) pipes[i]->put();
    int total = 0;
    for (auto& h : handles) {
        ctx.run_until([&] { return h.done(); });
        total += h.get();
    }
    CHECK(total == count);
}
