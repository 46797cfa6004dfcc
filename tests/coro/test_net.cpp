// Socket helpers: addresses, listen/connect over IPv4, IPv6 and Unix sockets, an echo round trip.
#include "support/loop_fixture.hpp"

#include <corio/net.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <string>

using corio::task;
using corio::test::loop_fixture;
namespace net = corio::net;

namespace {

// Accepts one connection and echoes what it receives until the peer closes.
task<void> echo_once(int listener) {
    auto conn = co_await corio::accept(listener);
    if (!conn) co_return;
    std::byte buf[256];
    for (;;) {
        auto n = co_await corio::recv(*conn, buf);
        if (!n || *n == 0) break;
        if (!co_await corio::write_all(*conn, std::span(buf, *n))) break;
    }
    (void)co_await corio::close(*conn);
}

task<std::string> round_trip(net::address to, std::string text) {
    auto fd = co_await net::connect(to);
    if (!fd) co_return "connect: " + fd.error().message();
    (void)co_await corio::write_all(*fd, std::as_bytes(std::span(text)));
    (void)co_await corio::shutdown(*fd, SHUT_WR);
    std::string back(text.size(), '\0');
    auto r = co_await corio::read_exact(*fd, std::as_writable_bytes(std::span(back)));
    (void)co_await corio::close(*fd);
    if (!r) co_return "read: " + r.error().message();
    back.resize(*r);
    co_return back;
}

std::string echo_via(corio::context& ctx, const net::address& where) {
    auto listener = net::listen(where);
    REQUIRE(listener.ok());
    auto bound = net::local_address(*listener);
    REQUIRE(bound.ok());
    auto server = corio::spawn(ctx, echo_once(*listener));
    const std::string got =
        corio::run(ctx, round_trip(*bound, "hello through " + bound->to_string()));
    ctx.run_until([&] { return server.done(); });
    ::close(*listener);
    return got;
}

}  // namespace

TEST_CASE("numeric addresses parse and print; anything else is EINVAL") {
    CHECK(net::ip("127.0.0.1", 80)->to_string() == "127.0.0.1:80");
    CHECK(net::ip("::1", 443)->to_string() == "[::1]:443");
    CHECK(net::ip("localhost", 1).error() == std::errc::invalid_argument);
    CHECK(net::ip("300.1.1.1", 1).error() == std::errc::invalid_argument);
    CHECK(net::unix_path(std::string(200, 'x')).error() == std::errc::filename_too_long);
}

TEST_CASE_FIXTURE(loop_fixture, "an echo round trip over IPv4 loopback") {
    const std::string got = echo_via(ctx, *net::ip("127.0.0.1", 0));
    CHECK(got.find("hello through 127.0.0.1:") == 0);
}

TEST_CASE_FIXTURE(loop_fixture, "an echo round trip over IPv6 loopback") {
    auto probe = net::listen(*net::ip("::1", 0));
    if (!probe) {
        MESSAGE("IPv6 loopback unavailable here: " << probe.error().message());
        return;
    }
    ::close(*probe);
    const std::string got = echo_via(ctx, *net::ip("::1", 0));
    CHECK(got.find("hello through [::1]:") == 0);
}

TEST_CASE_FIXTURE(loop_fixture, "an echo round trip over a Unix socket") {
    std::string dir = (std::filesystem::temp_directory_path() / "corio-net-XXXXXX").string();
    REQUIRE(mkdtemp(dir.data()) != nullptr);
    const std::string path = dir + "/echo.sock";
    const std::string got = echo_via(ctx, *net::unix_path(path));
    CHECK(got == "hello through " + path);
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
}

TEST_CASE_FIXTURE(loop_fixture, "connecting to nobody is an error value") {
    auto free_port = net::listen(*net::ip("127.0.0.1", 0));
    REQUIRE(free_port.ok());
    const auto addr = *net::local_address(*free_port);
    ::close(*free_port);
    auto r = corio::run(ctx, net::connect(addr));
    CHECK(r.error() == std::errc::connection_refused);
}
