// read/write/recv/send/accept: data, partial results and EOF, errors as values, cancellation.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/spawn.hpp>
#include <corio/timeout.hpp>

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <atomic>
#include <cstring>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>

using corio::context;
using corio::result;
using corio::task;
using corio::test::loop_fixture;
using namespace std::chrono_literals;

namespace {

using socket_pair = corio::test::test_socket_pair;

std::span<const std::byte> bytes(const std::string& s) {
    return std::as_bytes(std::span(s));
}

task<std::string> recv_string(int fd, std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        auto r = co_await corio::recv(fd, std::as_writable_bytes(std::span(out)).subspan(got));
        if (!r || *r == 0) break;
        got += *r;
    }
    out.resize(got);
    co_return out;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "send and recv carry data between two coroutines") {
    socket_pair sp;
    constexpr int messages = 2000;
    auto sender = corio::spawn(ctx, [](int fd) -> task<int> {
        int sent = 0;
        for (int i = 0; i < messages; ++i) {
            const std::string msg = "message " + std::to_string(i) + ";";
            std::size_t off = 0;
            while (off < msg.size()) {
                auto r = co_await corio::send(fd, bytes(msg).subspan(off));
                if (!r) co_return -1;
                off += *r;
            }
            ++sent;
        }
        co_return sent;
    }(sp.a));
    auto receiver = corio::spawn(ctx, [](int fd) -> task<std::string> {
        std::string all;
        char buf[100];
        // Until the last message: the sender blocks whenever the socket buffer is full.
        while (all.find("message 1999;") == std::string::npos) {
            auto r = co_await corio::recv(fd, std::as_writable_bytes(std::span(buf)));
            if (!r || *r == 0) break;
            all.append(buf, *r);
        }
        co_return all;
    }(sp.b));
    ctx.run_until([&] { return sender.done() && receiver.done(); });
    CHECK(sender.get() == messages);
    const std::string all = receiver.get();
    CHECK(all.find("message 0;message 1;") == 0);
    CHECK(all.find("message 1999;") != std::string::npos);
}

TEST_CASE_FIXTURE(loop_fixture, "read and write on a pipe, EOF as 0 bytes") {
    corio::test::test_pipe p;
    auto r = corio::run(ctx, [](int rd, int wr) -> task<std::string> {
        const std::string hello = "hello";
        auto w = co_await corio::write(wr, bytes(hello));
        if (!w || *w != 5) co_return "write failed";
        char buf[16];
        auto n = co_await corio::read(rd, std::as_writable_bytes(std::span(buf)));
        if (!n) co_return "read failed";
        std::string got(buf, *n);
        ::close(wr);
        auto eof = co_await corio::read(rd, std::as_writable_bytes(std::span(buf)));
        co_return got + (eof && *eof == 0 ? "+eof" : "+no-eof");
    }(p.rd, p.wr));
    p.wr = -1;  // closed by the coroutine
    CHECK(r == "hello+eof");
}

TEST_CASE_FIXTURE(loop_fixture, "a recv waits for data sent later from another thread") {
    socket_pair sp;
    std::atomic<bool> sent{false};
    corio::test::remote_action late(ctx, [&] { sent = ::send(sp.a, "late", 4, 0) == 4; });
    CHECK(corio::run(ctx, [](int fd, std::atomic<bool>& armed) -> task<std::string> {
              armed.store(true);
              co_return co_await recv_string(fd, 4);
          }(sp.b, late.armed)) == "late");
    late.join();
    CHECK(sent.load());
}

TEST_CASE_FIXTURE(loop_fixture, "expected errors are values: EPIPE, ECONNRESET-free EOF, EBADF") {
    socket_pair sp;
    ::close(sp.b);
    sp.b = -1;
    auto [pipe_err, bad_fd] =
        corio::run(ctx, [](int fd) -> task<std::pair<std::error_code, std::error_code>> {
            const std::string data(1 << 16, 'x');
            std::error_code first;
            for (int i = 0; i < 8 && !first; ++i)
                first = (co_await corio::send(fd, bytes(data))).error();
            auto bad = co_await corio::recv(-1, std::span<std::byte>());
            co_return std::pair{first, bad.error()};
        }(sp.a));
    CHECK(pipe_err == std::errc::broken_pipe);  // and no SIGPIPE killed us
    CHECK(bad_fd == std::errc::bad_file_descriptor);
}

TEST_CASE_FIXTURE(loop_fixture, "accept returns a connected, non-blocking socket") {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    std::thread client([addr] {
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::send(c, "ping", 4, 0) == 4);
        char buf[4];
        REQUIRE(::recv(c, buf, 4, MSG_WAITALL) == 4);
        ::close(c);
    });
    const std::string echoed = corio::run(ctx, [](int lfd) -> task<std::string> {
        auto conn = co_await corio::accept(lfd);
        if (!conn) co_return "accept: " + conn.error().message();
        const int fd = *conn;
        const int flags = fcntl(fd, F_GETFL);
        std::string got = co_await recv_string(fd, 4);
        (void)co_await corio::send(fd, bytes(got));
        ::close(fd);
        co_return (flags & O_NONBLOCK) ? got : "blocking";
    }(listener));
    client.join();
    ::close(listener);
    CHECK(echoed == "ping");
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a cancelled recv returns ECANCELED and loses no data sent afterwards") {
    socket_pair sp;
    corio::test::remote_stop stop{ctx};
    auto [cancelled, after] = corio::run(
        ctx,
        [](int fd, std::stop_token st,
           std::atomic<bool>& w) -> task<std::pair<std::error_code, std::string>> {
            char buf[8];
            w.store(true);
            auto r = co_await corio::recv(fd, std::as_writable_bytes(std::span(buf)), 0, st);
            co_return std::pair{r.error(), std::string()};
        }(sp.b, stop.token(), stop.armed));
    stop.join();
    CHECK(cancelled == std::errc::operation_canceled);
    REQUIRE(::send(sp.a, "kept", 4, 0) == 4);
    CHECK(corio::run(ctx, recv_string(sp.b, 4)) == "kept");
    (void)after;
}

namespace {

// A loopback TCP listener on an ephemeral port.
struct tcp_listener {
    int fd = -1;
    sockaddr_in addr{};
    tcp_listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    }
    ~tcp_listener() { ::close(fd); }
};

int tcp_socket() {
    return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "connect, accept, write_all, read_exact, shutdown and close over TCP") {
    tcp_listener l;
    const std::string payload(1 << 20, 'p');  // more than a socket buffer: partial writes
    auto server = corio::spawn(ctx, [](int lfd, std::size_t n) -> task<std::string> {
        auto conn = co_await corio::accept(lfd);
        if (!conn) co_return "accept failed";
        std::string got(n, '\0');
        auto r = co_await corio::read_exact(*conn, std::as_writable_bytes(std::span(got)));
        char extra;
        auto eof = co_await corio::recv(*conn, std::as_writable_bytes(std::span(&extra, 1)));
        (void)co_await corio::close(*conn);
        if (!r || *r != n) co_return "short read";
        co_return (eof && *eof == 0) ? got.substr(0, 3) + "+eof" : "no eof";
    }(l.fd, payload.size()));
    auto client =
        corio::spawn(ctx, [](sockaddr_in addr, const std::string& data) -> task<std::string> {
            const int fd = tcp_socket();
            auto c =
                co_await corio::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
            if (!c) co_return "connect: " + c.error().message();
            auto w = co_await corio::write_all(fd, bytes(data));
            auto s = co_await corio::shutdown(fd, SHUT_WR);
            auto cl = co_await corio::close(fd);
            co_return (w && *w == data.size() && s && cl) ? "ok" : "failed";
        }(l.addr, payload));
    ctx.run_until([&] { return server.done() && client.done(); });
    CHECK(client.get() == "ok");
    CHECK(server.get() == "ppp+eof");
}

TEST_CASE_FIXTURE(loop_fixture, "connecting to a closed port is ECONNREFUSED, as a value") {
    sockaddr_in addr{};
    {
        tcp_listener l;  // take an ephemeral port, then free it
        addr = l.addr;
    }
    const std::error_code e = corio::run(ctx, [](sockaddr_in a) -> task<std::error_code> {
        const int fd = tcp_socket();
        auto c = co_await corio::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
        ::close(fd);
        co_return c.error();
    }(addr));
    CHECK(e == std::errc::connection_refused);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "with_timeout cancels a recv that takes too long, and keeps later data") {
    socket_pair sp;
    const std::error_code e = corio::run(ctx, [](int fd) -> task<std::error_code> {
        char buf[8];
        auto r = co_await corio::with_timeout(2ms, [&](std::stop_token st) {
            return corio::recv(fd, std::as_writable_bytes(std::span(buf)), 0, st);
        });
        co_return r.error();
    }(sp.b));
    CHECK(e == std::errc::timed_out);
    REQUIRE(::send(sp.a, "late", 4, 0) == 4);
    CHECK(corio::run(ctx, recv_string(sp.b, 4)) == "late");
}

TEST_CASE_FIXTURE(loop_fixture,
                  "with_timeout returns the result of an operation that finishes in time") {
    socket_pair sp;
    REQUIRE(::send(sp.a, "fast", 4, 0) == 4);
    const std::size_t n = corio::run(ctx, [](int fd) -> task<std::size_t> {
        char buf[8];
        auto r = co_await corio::with_timeout(1h, [&](std::stop_token st) {
            return corio::recv(fd, std::as_writable_bytes(std::span(buf)), 0, st);
        });
        co_return r ? *r : 0;
    }(sp.b));
    CHECK(n == 4);
    CHECK(ctx.compute_timeout() == -1);  // its timer is gone
}

TEST_CASE_FIXTURE(loop_fixture,
                  "an operation that succeeds at once leaves another waiter's fd handler alone") {
    // A send that completes without suspending must not remove the handler through which a recv
    // on the same socket is waiting (epoll/poll register one; io_uring has none to lose).
    socket_pair sp;
    auto reader = corio::spawn(ctx, recv_string(sp.b, 4));
    ctx.poll(false);  // the reader is now waiting
    REQUIRE_FALSE(reader.done());
    const bool sent = corio::run(ctx, [](int fd) -> task<bool> {
        auto s = co_await corio::send(fd, bytes("sent"));
        co_return s&&* s == 4;
    }(sp.b));
    CHECK(sent);
    REQUIRE(::send(sp.a, "back", 4, 0) == 4);
    ctx.run_until([&] { return reader.done(); });  // the watchdog fails a lost wake-up
    CHECK(reader.get() == "back");
}

TEST_CASE_FIXTURE(loop_fixture,
                  "an offset on a pipe is ignored on every backend, as io_uring does") {
    // pread/pwrite say ESPIPE there; io_uring reads and writes the stream. Both agree now.
    corio::test::test_pipe p;
    auto [wrote, got] = corio::run(ctx, [](int rd, int wr) -> task<std::pair<long, std::string>> {
        auto w = co_await corio::write(wr, bytes("pipe"), 3);
        std::string s(8, '\0');
        auto r = co_await corio::read(rd, std::as_writable_bytes(std::span(s)), 5);
        if (!w || !r) co_return std::pair{-1L, std::string()};
        s.resize(*r);
        co_return std::pair{static_cast<long>(*w), s};
    }(p.rd, p.wr));
    CHECK(wrote == 4);
    CHECK(got == "pipe");
}

TEST_CASE_FIXTURE(loop_fixture, "a buffer of 4 GiB or more is not truncated to a short length") {
    // io_uring's length field has 32 bits: 4 GiB must not become 0 (a false EOF). Only the
    // pages actually written are ever backed by memory.
    constexpr std::size_t huge = std::size_t{1} << 32;
    void* mem = ::mmap(nullptr, huge, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    const std::span<std::byte> buf(static_cast<std::byte*>(mem), huge);
    corio::test::test_pipe p;
    socket_pair sp;
    p.put('a');
    REQUIRE(::send(sp.a, "bc", 2, 0) == 2);
    auto [from_pipe, from_socket] = corio::run(
        ctx, [](std::span<std::byte> b, int rd, int sock) -> task<std::pair<long, long>> {
            auto r = co_await corio::read(rd, b);
            auto s = co_await corio::recv(sock, b);
            co_return std::pair{r ? static_cast<long>(*r) : -1L, s ? static_cast<long>(*s) : -1L};
        }(buf, p.rd, sp.b));
    ::munmap(mem, huge);
    CHECK(from_pipe == 1);
    CHECK(from_socket == 2);
}

// Without io_uring, a read or recv that came back short makes the next one on that fd wait for
// readiness without trying first: data that arrived meanwhile must still be seen at once.

TEST_CASE_FIXTURE(loop_fixture, "a recv after a short one sees data that is already there") {
    socket_pair s;
    auto [first, second, third] = corio::run(
        ctx, [](int a, int b) -> task<std::tuple<std::string, std::string, std::string>> {
            std::string buf(16, '\0');
            auto span = std::as_writable_bytes(std::span(buf));
            REQUIRE(::send(b, "abc", 3, 0) == 3);
            auto r1 = co_await corio::recv(a, span);  // short: 3 of 16
            std::string one = buf.substr(0, r1.ok() ? *r1 : 0);
            REQUIRE(::send(b, "defg", 4, 0) == 4);  // queued before the next recv starts
            auto r2 = co_await corio::recv(a, span);
            std::string two = buf.substr(0, r2.ok() ? *r2 : 0);
            ::shutdown(b, SHUT_WR);
            auto r3 = co_await corio::recv(a, span);  // after a short one again: EOF
            co_return std::tuple{one, two, r3.ok() && *r3 == 0 ? "eof" : "?"};
        }(s.a, s.b));
    CHECK(first == "abc");
    CHECK(second == "defg");
    CHECK(third == "eof");
}

TEST_CASE_FIXTURE(loop_fixture, "a read after a short one from a pipe, and on another fd") {
    corio::test::test_pipe p;
    corio::test::test_pipe q;
    p.put('a');
    q.put('q');
    auto [first, other, second] =
        corio::run(ctx, [](int prd, int pwr, int qrd) -> task<std::tuple<long, long, long>> {
            std::byte buf[8];
            auto r1 = co_await corio::read(prd, buf);  // short: 1 of 8
            auto r2 = co_await corio::read(qrd, buf);  // another fd: its data is there
            const char more[] = "bc";
            REQUIRE(::write(pwr, more, 2) == 2);
            auto r3 = co_await corio::read(prd, buf);
            co_return std::tuple{r1.ok() ? long(*r1) : -1, r2.ok() ? long(*r2) : -1,
                                 r3.ok() ? long(*r3) : -1};
        }(p.rd, p.wr, q.rd));
    CHECK(first == 1);
    CHECK(other == 1);
    CHECK(second == 2);
}

TEST_CASE_FIXTURE(loop_fixture, "datagrams and peeks: a short result is not taken as drained") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    REQUIRE(::send(sv[1], "one", 3, 0) == 3);
    REQUIRE(::send(sv[1], "two", 3, 0) == 3);
    auto got = corio::run(ctx, [](int fd) -> task<std::string> {
        std::string all;
        char buf[16];
        auto span = std::as_writable_bytes(std::span(buf));
        auto peek = co_await corio::recv(fd, span, MSG_PEEK);  // short, leaves it queued
        if (peek.ok()) all.append(buf, *peek);
        for (int i = 0; i < 2; ++i) {  // each datagram is short of 16: more are queued still
            auto r = co_await corio::recv(fd, span);
            if (r.ok()) all.append(buf, *r);
        }
        co_return all;
    }(sv[0]));
    CHECK(got == "oneonetwo");
    close(sv[0]);
    close(sv[1]);
}
