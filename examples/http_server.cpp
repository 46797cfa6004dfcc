// http_server — an HTTP/1.1 keep-alive server: one coroutine per connection, files streamed with
// corio's file awaitables, every wait bounded by a timeout, a clean stop on SIGINT/SIGTERM.
// `GET /` answers a greeting, `GET /file/<name>` the file <name> of --root; pipelined requests in
// order. A request slower than --header-timeout gets a 408, a client as slow to read is dropped.
#include "common/connection_count.hpp"
#include "common/flags.hpp"
#include "common/sockets.hpp"
#include "common/timed_io.hpp"
#include "http/request_stream.hpp"
#include "http/response.hpp"
#include "http/route.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/net.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/when_any.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <cstring>

namespace {

struct server {
    int root = -1;                       // the directory served under /file/ (an O_PATH fd)
    std::chrono::nanoseconds timeout{};  // --header-timeout
    examples::connection_count connections{};
};

/// Sends answer `a`: false if the connection must end. The file is read in chunks at offsets
/// (io_uring reads, or the context's thread pool: the loop thread never waits on the disk).
corio::task<bool> respond(int fd, const server& srv, const http::answer& a) {
    auto send = [&](std::string_view data) { return examples::send_all(fd, data, srv.timeout); };
    if (a.file.empty())
        co_return co_await send(http::text_response(a.status, a.head_only, a.connection));
    // O_NOFOLLOW: no symlink out of the root. O_NONBLOCK: a FIFO must not wait for a writer.
    corio::result<int> file =
        co_await corio::openat(srv.root, a.file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    struct ::statx st {};
    bool ok = file.ok();
    if (ok)
        ok = co_await corio::statx(*file, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st) &&
             S_ISREG(st.stx_mode) && fcntl(*file, F_SETFL, 0) == 0;
    if (file && !ok) ::close(*file);
    if (!ok) co_return co_await send(http::text_response(404, a.head_only, a.connection));
    ok = co_await send(
        http::response_head(200, st.stx_size, "application/octet-stream", a.connection));
    std::string chunk(std::min<std::uint64_t>(st.stx_size, 64 * 1024), '\0');
    for (std::uint64_t offset = 0; ok && !a.head_only && offset < st.stx_size;) {
        corio::result<std::size_t> n = co_await corio::read(
            *file, std::as_writable_bytes(std::span(chunk)), static_cast<std::int64_t>(offset));
        ok = n && *n > 0;  // a file that shrank cannot fill the promised length: end the connection
        if (ok) ok = co_await send(std::string_view(chunk).substr(0, *n));
        if (ok) offset += *n;
    }
    ::close(*file);  // not co_await corio::close(): it would not run in a cancelled coroutine
    co_return ok;
}

/// One connection: requests are answered in order until the client closes, asks to, times out,
/// errs, or shutdown begins.
corio::task<void> serve(int fd, server& srv) {
    http::request_stream in;
    for (bool open = true; open; in.pop()) {
        const std::int64_t deadline = examples::now() + srv.timeout.count();  // whole request
        http::parse_result request;
        int status = 0;  // an error to answer before closing (-1: close without an answer)
        while (status == 0 && (request = in.front()).incomplete()) {
            corio::result<std::size_t> n = co_await examples::recv_until(fd, in.space(), deadline);
            if (n && *n > 0) in.received(*n);
            if (!n || *n == 0)
                status = !n && n.error() == std::errc::timed_out && in.begun() ? 408 : -1;
        }
        if (request.problem != http::error::none) status = http::status(request.problem);
        if (status < 0) break;
        const http::answer a = status > 0 ? http::error_answer(status) : http::route(*request.head);
        const bool sent = co_await respond(fd, srv, a);
        if (sent && a.close()) co_await examples::drain(fd);  // the client may have sent more
        open = sent && !a.close();
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
            co_await corio::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        examples::no_delay(*fd);  // headers and body go out as separate sends
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
        corio::signal_set signals{SIGINT, SIGTERM};  // first: threads started later block them
        corio::context ctx(options);
        server srv{.root = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC),
                   .timeout = std::chrono::seconds(timeout)};
        if (srv.root < 0) {
            fmt::print(stderr, "http_server: --root {}: {}\n", root, std::strerror(errno));
            return 1;
        }
        const std::optional<int> listener = examples::listen_on_loopback("http_server", port);
        if (!listener) return 1;
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
