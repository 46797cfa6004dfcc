// http_server — an HTTP/1.1 keep-alive server: one coroutine per connection, files streamed with
// corio's file awaitables, every wait bounded by a timeout, a clean stop on SIGINT/SIGTERM.
//
// The pure http/ library parses and routes the requests: `GET /` answers a greeting, `GET
// /file/<name>` sends the file <name> of --root. Pipelined requests are answered in order. A
// request must arrive within --header-timeout (else 408), and a client that takes no response
// byte for that long is dropped.
#include "common/connection_count.hpp"
#include "common/flags.hpp"
#include "http/request_stream.hpp"
#include "http/response.hpp"
#include "http/route.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/net.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/timeout.hpp>
#include <corio/when_any.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <unistd.h>
#include <array>
#include <cstring>

namespace {

using namespace std::literals;
using std::chrono::nanoseconds;

struct server {
    int root = -1;          // the directory served under /file/ (an O_PATH fd)
    nanoseconds timeout{};  // --header-timeout
    examples::connection_count connections;
};

std::int64_t now() {
    return corio::context::current()->now(corio::clock_type::monotonic);
}

/// A recv that ends with ETIMEDOUT at `deadline` (now() time), or ECANCELED on shutdown.
corio::task<corio::result<std::size_t>> recv_until(int fd, std::span<char> in,
                                                   std::int64_t deadline) {
    co_return co_await corio::with_timeout(
        nanoseconds(deadline - now()),
        [&](std::stop_token stop) { return corio::recv(fd, std::as_writable_bytes(in), 0, stop); });
}

/// Sends all of `data`: false if the peer is gone, takes no byte for `timeout`, or on shutdown.
corio::task<bool> send_all(int fd, std::string_view data, nanoseconds timeout) {
    for (auto bytes = std::as_bytes(std::span(data)); !bytes.empty();) {
        corio::result<std::size_t> n = co_await corio::with_timeout(
            timeout, [&](std::stop_token stop) { return corio::send(fd, bytes, 0, stop); });
        if (!n) co_return false;
        bytes = bytes.subspan(*n);
    }
    co_return true;
}

/// Sends answer `a`: false if the connection must end. The file is read in chunks at offsets
/// (io_uring reads, or the context's thread pool: the loop thread never waits on the disk).
corio::task<bool> respond(int fd, const server& srv, const http::answer& a) {
    const std::string missing = http::text_response(404, a.head_only, a.close);
    if (a.file.empty())
        co_return co_await send_all(fd, http::text_response(a.status, a.head_only, a.close),
                                    srv.timeout);
    // O_NOFOLLOW: a symlink may not lead out of the root. O_NONBLOCK: opening a FIFO must not
    // wait for a writer (cleared once the file is known to be a regular one).
    corio::result<int> file =
        co_await corio::openat(srv.root, a.file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!file) co_return co_await send_all(fd, missing, srv.timeout);
    struct ::statx st {};
    corio::result<void> stat =
        co_await corio::statx(*file, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st);
    if (!stat || !S_ISREG(st.stx_mode) || fcntl(*file, F_SETFL, 0) < 0) {
        ::close(*file);
        co_return co_await send_all(fd, missing, srv.timeout);
    }
    bool ok = co_await send_all(
        fd, http::response_head(200, st.stx_size, "application/octet-stream", a.close),
        srv.timeout);
    std::string chunk(std::min<std::uint64_t>(st.stx_size, 64 * 1024), '\0');
    for (std::uint64_t offset = 0; ok && !a.head_only && offset < st.stx_size;) {
        corio::result<std::size_t> n = co_await corio::read(
            *file, std::as_writable_bytes(std::span(chunk)), static_cast<std::int64_t>(offset));
        ok = n && *n > 0;  // a file that shrank cannot fill the promised length: end the connection
        if (ok) ok = co_await send_all(fd, std::string_view(chunk).substr(0, *n), srv.timeout);
        if (ok) offset += *n;
    }
    ::close(*file);  // not co_await corio::close(): it would not run in a cancelled coroutine
    co_return ok;
}

/// After the last answer: stops sending (FIN), then drops what the client still sends until it
/// closes, for a second at most. Closing with unread bytes would reset the connection, and a
/// reset can destroy the answer before the client reads it.
corio::task<void> drain(int fd) {
    ::shutdown(fd, SHUT_WR);
    std::array<char, 4096> sink;
    for (const std::int64_t deadline = now() + 1'000'000'000;;) {
        corio::result<std::size_t> n = co_await recv_until(fd, sink, deadline);
        if (!n || *n == 0) co_return;
    }
}

/// One connection: requests are answered in order until the client closes, asks to, times out,
/// errs, or shutdown begins.
corio::task<void> serve(int fd, server& srv) {
    http::request_stream in;
    for (bool open = true; open; in.pop()) {
        const std::int64_t deadline = now() + srv.timeout.count();  // for the whole request
        http::parse_result request;
        int status = 0;  // an error to answer before closing (-1: close without an answer)
        while (status == 0 && (request = in.front()).incomplete()) {
            corio::result<std::size_t> n = co_await recv_until(fd, in.space(), deadline);
            if (n && *n > 0) in.received(*n);
            if (!n || *n == 0)
                status = !n && n.error() == std::errc::timed_out && in.begun() ? 408 : -1;
        }
        if (request.problem != http::error::none) status = http::status(request.problem);
        if (status < 0) break;
        const http::answer a =
            status > 0
                ? http::answer{.status = status, .file = {}, .head_only = false, .close = true}
                : http::route(*request.head);
        open = co_await respond(fd, srv, a);
        if (open && a.close) {
            co_await drain(fd);  // the client may have sent more
            open = false;
        }
    }
    ::close(fd);
    srv.connections.drop();
}

corio::task<void> accept_loop(int listener, server& srv, std::stop_token shutdown) {
    for (;;) {
        corio::result<int> fd = co_await corio::accept(listener);
        if (!fd && fd.error() == std::errc::operation_canceled) co_return;  // shutdown
        if (!fd) {  // out of fds (EMFILE, ENFILE) or memory: wait for connections to close
            fmt::print(stderr, "http_server: accept: {}\n", fd.error().message());
            co_await corio::sleep_for(100ms);
            continue;
        }
        const int one = 1;  // headers and body go out as separate sends: no Nagle delay
        setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        srv.connections.add();
        corio::spawn(*corio::context::current(), serve(*fd, srv), "connection", shutdown);
    }
}

corio::task<void> run_server(int listener, server& srv, corio::signal_set& signals) {
    std::stop_source shutdown;
    co_await corio::when_any(accept_loop(listener, srv, shutdown.get_token()), signals.wait());
    shutdown.request_stop();  // every connection's pending operation ends with ECANCELED
    srv.connections.drop();   // the acceptor's
    co_await srv.connections.all_closed.wait();
}

constexpr std::string_view usage =
    "usage: http_server [--backend B] [--port P] [--root DIR] [--header-timeout S]\n"
    "  --port P            on 127.0.0.1 (0: any free one; default 8080)\n"
    "  --root DIR          the directory served under /file/ (default .)\n"
    "  --header-timeout S  the seconds a request may take to arrive (default 10)\n";

}  // namespace

int main(int argc, char** argv) {
    corio::context_options options{.name = "http"};
    int port = 8080, timeout = 10;
    std::string root = ".";
    examples::flags flags("http_server", usage);
    flags.backend(options.backend).number("--port", port, 0, 65535).text("--root", root);
    flags.number("--header-timeout", timeout, 1, 86400);
    if (std::optional<int> status = flags.parse(argc, argv)) return *status;
    try {
        // Before any thread exists (the context's thread pool): every thread inherits the
        // blocked signals, which are only ever read from the signalfd.
        corio::signal_set signals{SIGINT, SIGTERM};
        corio::context ctx(options);
        server srv;
        srv.root = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        srv.timeout = std::chrono::seconds(timeout);
        if (srv.root < 0) {
            fmt::print(stderr, "http_server: --root {}: {}\n", root, std::strerror(errno));
            return 1;
        }
        const auto address = corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value();
        corio::result<int> listener = corio::net::listen(address);
        if (!listener) {
            fmt::print(stderr, "http_server: listen on {}: {}\n", address.to_string(),
                       listener.error().message());
            return 1;
        }
        fmt::print("http_server on http://{}/ ({}), serving {} under /file/\n",
                   corio::net::local_address(*listener)->to_string(),
                   corio::to_string(ctx.backend()), root);
        std::fflush(stdout);
        corio::run(ctx, run_server(*listener, srv, signals));
        return 0;  // the process ends: no need to close the listener and the root
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "http_server: {}\n", e.what());
        return 1;
    }
}
