// Full duplex on one fd: a coroutine waiting to read and another waiting to write share the
// fd's handler on every backend, each woken by its own direction.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstddef>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

using corio::context;
using corio::result;
using corio::task;
using corio::test::loop_fixture;

namespace {

// The end `a` is the one under test; the test plays the peer at `b` by hand.
struct socket_pair : corio::test::test_socket_pair {
    // Sends from `a` until its buffer is full, so the next send on `a` waits.
    void fill_a() const {
        const std::vector<char> chunk(4096, 'f');
        while (::send(a, chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
        }
        REQUIRE(errno == EAGAIN);
    }
    // Reads everything queued at `b`.
    std::string drain_b() const {
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(b, buf, sizeof buf, MSG_DONTWAIT)) > 0) out.append(buf, n);
        return out;
    }
    void send_b(const std::string& s) const {
        REQUIRE(::send(b, s.data(), s.size(), MSG_DONTWAIT) == static_cast<ssize_t>(s.size()));
    }
};

task<result<std::string>> receive(int fd, std::stop_token stop = {}) {
    std::string buf(64, '\0');
    auto r = co_await corio::recv(fd, std::as_writable_bytes(std::span(buf)), 0, std::move(stop));
    if (!r) co_return r.error();
    buf.resize(*r);
    co_return buf;
}

task<result<std::size_t>> transmit(int fd, const std::string& data, std::stop_token stop = {}) {
    co_return co_await corio::send(fd, std::as_bytes(std::span(data)), 0, std::move(stop));
}

// Runs non-blocking iterations until nothing is left to do: every coroutine that can go on has.
void settle(context& ctx) {
    while (ctx.poll(false)) {
    }
}

// The fd handler is what the readiness path uses; with io_uring, recv and send are SQEs.
bool uses_fd_handler(const context& ctx) {
    return !ctx.has_io_uring();
}

const std::string payload = "pushed while a receive waits";

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a coroutine receives while another sends on the same socket") {
    socket_pair s;
    s.fill_a();
    auto reader = corio::spawn(ctx, receive(s.a));
    auto writer = corio::spawn(ctx, transmit(s.a, payload));
    settle(ctx);
    REQUIRE_FALSE(reader.done());
    REQUIRE_FALSE(writer.done());
    if (uses_fd_handler(ctx)) CHECK(ctx.has_fd_handler(s.a));
    s.send_b("ping");
    const std::string filler = s.drain_b();
    CHECK(filler.find_first_not_of('f') == std::string::npos);
    ctx.run_until([&] { return reader.done() && writer.done(); });
    const auto got = reader.get();
    REQUIRE(got.ok());
    CHECK(*got == "ping");
    const auto sent = writer.get();
    REQUIRE(sent.ok());
    REQUIRE(*sent > 0);
    CHECK(s.drain_b() == payload.substr(0, *sent));
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "the reader is woken first while the writer keeps waiting") {
    socket_pair s;
    s.fill_a();
    auto reader = corio::spawn(ctx, receive(s.a));
    auto writer = corio::spawn(ctx, transmit(s.a, payload));
    settle(ctx);
    s.send_b("first");
    ctx.run_until([&] { return reader.done(); });
    const auto first = reader.get();
    REQUIRE(first.ok());
    CHECK(*first == "first");
    // The writer's direction is still watched after the reader's fired (epoll: re-armed).
    settle(ctx);
    CHECK_FALSE(writer.done());
    if (uses_fd_handler(ctx)) CHECK(ctx.has_fd_handler(s.a));
    s.drain_b();
    ctx.run_until([&] { return writer.done(); });
    const auto sent = writer.get();
    REQUIRE(sent.ok());
    CHECK(s.drain_b() == payload.substr(0, *sent));
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "the writer is woken first while the reader keeps waiting") {
    socket_pair s;
    s.fill_a();
    auto reader = corio::spawn(ctx, receive(s.a));
    auto writer = corio::spawn(ctx, transmit(s.a, payload));
    settle(ctx);
    s.drain_b();
    ctx.run_until([&] { return writer.done(); });
    const auto sent = writer.get();
    REQUIRE(sent.ok());
    CHECK(s.drain_b() == payload.substr(0, *sent));
    settle(ctx);
    CHECK_FALSE(reader.done());
    if (uses_fd_handler(ctx)) CHECK(ctx.has_fd_handler(s.a));
    s.send_b("later");
    ctx.run_until([&] { return reader.done(); });
    const auto later = reader.get();
    REQUIRE(later.ok());
    CHECK(*later == "later");
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "both directions ready at once wake both waiters") {
    socket_pair s;
    s.fill_a();
    auto reader = corio::spawn(ctx, receive(s.a));
    auto writer = corio::spawn(ctx, transmit(s.a, payload));
    settle(ctx);
    s.send_b("both");
    s.drain_b();
    ctx.run_until([&] { return reader.done() && writer.done(); });
    const auto got = reader.get();
    const auto sent = writer.get();
    REQUIRE(got.ok());
    REQUIRE(sent.ok());
    CHECK(*got == "both");
    CHECK(s.drain_b() == payload.substr(0, *sent));
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "cancelling the reader leaves the writer waiting, then done") {
    socket_pair s;
    s.fill_a();
    std::stop_source stop = corio::test::new_stop_source();
    auto reader = corio::spawn(ctx, receive(s.a, stop.get_token()));
    auto writer = corio::spawn(ctx, transmit(s.a, payload));
    settle(ctx);
    stop.request_stop();
    ctx.run_until([&] { return reader.done(); });
    CHECK(reader.get().error() == std::errc::operation_canceled);
    settle(ctx);
    CHECK_FALSE(writer.done());
    if (uses_fd_handler(ctx)) CHECK(ctx.has_fd_handler(s.a));
    s.drain_b();
    ctx.run_until([&] { return writer.done(); });
    const auto sent = writer.get();
    REQUIRE(sent.ok());
    CHECK(s.drain_b() == payload.substr(0, *sent));
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "cancelling the writer leaves the reader waiting, then done") {
    socket_pair s;
    s.fill_a();
    std::stop_source stop = corio::test::new_stop_source();
    auto reader = corio::spawn(ctx, receive(s.a));
    auto writer = corio::spawn(ctx, transmit(s.a, payload, stop.get_token()));
    settle(ctx);
    stop.request_stop();
    ctx.run_until([&] { return writer.done(); });
    CHECK(writer.get().error() == std::errc::operation_canceled);
    settle(ctx);
    CHECK_FALSE(reader.done());
    if (uses_fd_handler(ctx)) CHECK(ctx.has_fd_handler(s.a));
    s.send_b("still here");
    ctx.run_until([&] { return reader.done(); });
    const auto got = reader.get();
    REQUIRE(got.ok());
    CHECK(*got == "still here");
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "wait_readable and wait_writable wait on the same fd at once") {
    socket_pair s;
    s.fill_a();
    auto readable = corio::spawn(ctx, [](int fd) -> task<result<void>> {
        co_return co_await corio::wait_readable(fd);
    }(s.a));
    auto writable = corio::spawn(ctx, [](int fd) -> task<result<void>> {
        co_return co_await corio::wait_writable(fd);
    }(s.a));
    settle(ctx);
    REQUIRE_FALSE(readable.done());
    REQUIRE_FALSE(writable.done());
    CHECK(ctx.has_fd_handler(s.a));
    s.send_b("r");
    ctx.run_until([&] { return readable.done(); });
    CHECK(readable.get().ok());
    settle(ctx);
    CHECK_FALSE(writable.done());
    CHECK(ctx.has_fd_handler(s.a));
    s.drain_b();
    ctx.run_until([&] { return writable.done(); });
    CHECK(writable.get().ok());
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "a second wait in the same direction gets EEXIST") {
    socket_pair s;
    s.fill_a();
    auto wait = [](int fd, bool write) -> task<result<void>> {
        co_return co_await (write ? corio::wait_writable(fd) : corio::wait_readable(fd));
    };
    auto reader = corio::spawn(ctx, wait(s.a, false));
    auto writer = corio::spawn(ctx, wait(s.a, true));
    settle(ctx);
    auto second_reader = corio::spawn(ctx, wait(s.a, false));
    auto second_writer = corio::spawn(ctx, wait(s.a, true));
    ctx.run_until([&] { return second_reader.done() && second_writer.done(); });
    CHECK(second_reader.get().error() == std::errc::file_exists);
    CHECK(second_writer.get().error() == std::errc::file_exists);
    // The first two still wait, and are still woken.
    CHECK_FALSE(reader.done());
    CHECK_FALSE(writer.done());
    s.send_b("x");
    s.drain_b();
    ctx.run_until([&] { return reader.done() && writer.done(); });
    CHECK(reader.get().ok());
    CHECK(writer.get().ok());
    CHECK_FALSE(ctx.has_fd_handler(s.a));
}

TEST_CASE_FIXTURE(loop_fixture, "an fd with a handler of its own refuses both directions") {
    socket_pair s;
    corio::fd_callbacks cb;
    cb.read = [](void*) {};
    ctx.add_fd_handler(s.a, cb, nullptr);
    auto readable = corio::spawn(ctx, [](int fd) -> task<result<void>> {
        co_return co_await corio::wait_readable(fd);
    }(s.a));
    auto writable = corio::spawn(ctx, [](int fd) -> task<result<void>> {
        co_return co_await corio::wait_writable(fd);
    }(s.a));
    ctx.run_until([&] { return readable.done() && writable.done(); });
    CHECK(readable.get().error() == std::errc::file_exists);
    CHECK(writable.get().error() == std::errc::file_exists);
    CHECK(ctx.has_fd_handler(s.a));
    ctx.remove_fd_handler(s.a);
}

TEST_CASE_FIXTURE(loop_fixture, "two contexts of one thread wait on the same fd separately") {
    socket_pair s;
    s.fill_a();
    context other{corio::context_options{corio::backend_kind::automatic, "other"}};
    auto wait = [](int fd, bool write) -> task<result<void>> {
        co_return co_await (write ? corio::wait_writable(fd) : corio::wait_readable(fd));
    };
    auto here_reader = corio::spawn(ctx, wait(s.a, false));
    auto there_reader = corio::spawn(other, wait(s.a, false));
    auto there_writer = corio::spawn(other, wait(s.a, true));
    settle(ctx);
    settle(other);
    REQUIRE_FALSE(here_reader.done());
    REQUIRE_FALSE(there_reader.done());
    REQUIRE_FALSE(there_writer.done());
    s.send_b("x");
    ctx.run_until([&] { return here_reader.done(); });
    other.run_until([&] { return there_reader.done(); });
    CHECK(here_reader.get().ok());
    CHECK(there_reader.get().ok());
    CHECK_FALSE(ctx.has_fd_handler(s.a));
    settle(other);
    CHECK_FALSE(there_writer.done());
    CHECK(other.has_fd_handler(s.a));
    s.drain_b();
    other.run_until([&] { return there_writer.done(); });
    CHECK(there_writer.get().ok());
    CHECK_FALSE(other.has_fd_handler(s.a));
}
