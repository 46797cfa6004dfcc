// http_server — an HTTP/1.1 keep-alive server: one coroutine per connection, files streamed with
// corio's file awaitables.
//
// `GET /` answers a fixed text; `GET /file/<name>` serves the file <name> of --root, read in
// 64 KiB chunks at offsets (io_uring reads where the backend has them, the context's thread
// pool elsewhere: the loop thread never waits on the disk). HEAD is answered without the body,
// other methods with 405. Requests may be pipelined and split anyhow over reads; every
// response follows its request in order.
//
// What a hostile or broken client gets: a malformed head, 400; a head over 8 KiB, 431; a body
// over 64 KiB, 413; a chunked body, 501 — each answer followed by a close, as the stream can
// no longer be trusted. A head (and its body) must arrive within --header-timeout of its first
// wait, or the client gets 408 and a close (an idle keep-alive connection is closed silently);
// a client that accepts no response bytes for that long is dropped. File names are decoded
// (%XX) first and must then be one plain name: no '/', no "." or "..", no NUL; the file is
// opened relative to the root directory's fd without following a symlink, and must be a
// regular file.
//
// SIGINT/SIGTERM arrive through a corio::signal_set: the acceptor stops, every connection's
// pending operation ends with ECANCELED (the stop token given to spawn) and it closes its
// socket; the program exits 0 once all are closed.
#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/net.hpp>
#include <corio/signal.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>
#include <corio/sync.hpp>
#include <corio/timeout.hpp>
#include <corio/when_any.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

namespace {

using namespace std::literals;
using std::chrono::nanoseconds;

constexpr std::size_t max_head = 8 * 1024;   // request line + headers; more: 431
constexpr std::size_t max_body = 64 * 1024;  // request bodies are read and dropped; more: 413
constexpr std::size_t file_chunk = 64 * 1024;
constexpr std::string_view hello = "Hello from corio!\n";

struct server {
    int root = -1;  // the directory served under /file/ (O_PATH fd)
    nanoseconds timeout{};
    int open = 1;  // connections, plus one for the acceptor while it runs
    corio::co_event all_closed;
    void drop() {
        if (--open == 0) all_closed.set();
    }
};

/// What the server needs from a request head (copied: the receive buffer moves on before the
/// response is sent, while a body is read and dropped).
struct request {
    std::string method;
    std::string target;
    bool keep_alive = true;
    std::size_t content_length = 0;
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool is_token(std::string_view s) {  // RFC 9110 token: method and header names
    return !s.empty() && s.find_first_not_of(
                             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789!#$%&'*+-.^_`|~") == s.npos;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Parses a head (request line and header lines, without the empty line ending it) into `req`:
/// 0, or the error status to answer before closing.
int parse_head(std::string_view head, request& req) {
    auto next_line = [&head] {
        const std::size_t end = head.find("\r\n");
        const std::string_view line = head.substr(0, end);
        head.remove_prefix(end == head.npos ? head.size() : end + 2);
        return line;
    };
    // request-line = method SP request-target SP HTTP-version
    const std::string_view line = next_line();
    const std::size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == line.npos || sp1 == sp2) return 400;
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method) || !target.starts_with('/')) return 400;
    req.method = method;
    req.target = target;
    for (char c : target) {
        if (c <= ' ' || c == '\x7f') return 400;
    }
    if (version.size() != 8 || !version.starts_with("HTTP/") || !std::isdigit(version[5]) ||
        version[6] != '.' || !std::isdigit(version[7]))
        return 400;
    if (version[5] != '1') return 505;
    const bool http10 = version == "HTTP/1.0";
    req.keep_alive = !http10;

    int hosts = 0;
    std::optional<std::size_t> length;
    while (!head.empty()) {
        const std::string_view field = next_line();
        const std::size_t colon = field.find(':');
        if (colon == field.npos || !is_token(field.substr(0, colon))) return 400;
        const std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
        for (char c : value) {
            if ((c < ' ' && c != '\t') || c == '\x7f') return 400;
        }
        if (iequals(name, "host")) {
            ++hosts;
        } else if (iequals(name, "transfer-encoding")) {
            return 501;  // chunked bodies are not supported (RFC 9112: 501 for an unknown coding)
        } else if (iequals(name, "content-length")) {
            std::size_t n = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
                (length && *length != n))
                return 400;
            length = n;
        } else if (iequals(name, "connection")) {
            for (std::string_view rest = value; !rest.empty();) {  // a comma-separated list
                const std::size_t comma = rest.find(',');
                const std::string_view option = trim(rest.substr(0, comma));
                rest.remove_prefix(comma == rest.npos ? rest.size() : comma + 1);
                if (iequals(option, "close")) req.keep_alive = false;
                if (iequals(option, "keep-alive") && http10) req.keep_alive = true;
            }
        }
    }
    if (!http10 && hosts != 1) return 400;  // RFC 9112: exactly one Host in HTTP/1.1
    req.content_length = length.value_or(0);
    return req.content_length > max_body ? 413 : 0;
}

std::string_view reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 413:
            return "Content Too Large";
        case 431:
            return "Request Header Fields Too Large";
        case 501:
            return "Not Implemented";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Internal Server Error";
    }
}

std::string response_head(int status, std::uint64_t length, std::string_view type, bool close) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nServer: corio\r\nContent-Length: {}\r\nContent-Type: {}\r\n{}{}\r\n",
        status, reason(status), length, type, status == 405 ? "Allow: GET, HEAD\r\n" : "",
        close ? "Connection: close\r\n" : "");
}

/// Sends all of `data`: false if the peer is gone, accepts no byte for `timeout`, or shutdown
/// began (the connection's stop token).
corio::task<bool> send_all(int fd, std::string_view data, nanoseconds timeout) {
    auto bytes = std::as_bytes(std::span(data));
    while (!bytes.empty()) {
        corio::result<std::size_t> n = co_await corio::with_timeout(
            timeout, [&](std::stop_token stop) { return corio::send(fd, bytes, 0, stop); });
        if (!n) co_return false;
        bytes = bytes.subspan(*n);
    }
    co_return true;
}

/// A fixed text answer (with the body unless `head_only`).
corio::task<bool> send_text(int fd, const server& srv, int status, std::string_view body,
                            bool head_only, bool close) {
    std::string out = response_head(status, body.size(), "text/plain", close);
    if (!head_only) out += body;
    co_return co_await send_all(fd, out, srv.timeout);
}

corio::task<bool> send_error(int fd, const server& srv, int status, bool head_only, bool close) {
    co_return co_await send_text(fd, srv, status, fmt::format("{} {}\n", status, reason(status)),
                                 head_only, close);
}

/// `encoded` with its %XX escapes decoded, if it is one plain file name once decoded.
std::optional<std::string> file_name(std::string_view encoded) {
    std::string name;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') {
            name += encoded[i];
            continue;
        }
        unsigned char c = 0;
        const char* hex = encoded.data() + i + 1;
        if (i + 3 > encoded.size() || std::from_chars(hex, hex + 2, c, 16).ptr != hex + 2)
            return std::nullopt;
        name += static_cast<char>(c);
        i += 2;
    }
    if (name.empty() || name == "." || name == ".." || name.find_first_of("/\0"sv) != name.npos)
        return std::nullopt;
    return name;
}

/// GET or HEAD /file/<encoded>: false if the connection must end.
corio::task<bool> send_file(int fd, const server& srv, std::string_view encoded, bool head_only,
                            bool close) {
    const std::optional<std::string> name = file_name(encoded);
    if (!name) co_return co_await send_error(fd, srv, 404, head_only, close);
    // O_NOFOLLOW: a symlink in the root may not lead out of it. O_NONBLOCK: opening a FIFO
    // must not wait for a writer; cleared below, once the file is known to be a regular one.
    corio::result<int> file =
        co_await corio::openat(srv.root, name->c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!file) co_return co_await send_error(fd, srv, 404, head_only, close);
    struct ::statx st {};
    corio::result<void> stat =
        co_await corio::statx(*file, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st);
    if (!stat || !S_ISREG(st.stx_mode) || fcntl(*file, F_SETFL, 0) < 0) {
        ::close(*file);
        co_return co_await send_error(fd, srv, 404, head_only, close);
    }
    bool ok = co_await send_all(
        fd, response_head(200, st.stx_size, "application/octet-stream", close), srv.timeout);
    std::string chunk(std::min<std::uint64_t>(st.stx_size, file_chunk), '\0');
    for (std::uint64_t offset = 0; ok && !head_only && offset < st.stx_size;) {
        corio::result<std::size_t> n = co_await corio::read(
            *file, std::as_writable_bytes(std::span(chunk)), static_cast<std::int64_t>(offset));
        // A file that shrank (n == 0) cannot fill the promised length: end the connection.
        ok = n && *n > 0;
        if (ok) ok = co_await send_all(fd, std::string_view(chunk).substr(0, *n), srv.timeout);
        if (ok) offset += *n;
    }
    // Not co_await corio::close(): it would not run in a coroutine cancelled by shutdown.
    ::close(*file);
    co_return ok;
}

/// Answers one request whose head parsed: false if the connection must end.
corio::task<bool> respond(int fd, const server& srv, const request& req) {
    const bool head_only = req.method == "HEAD", close = !req.keep_alive;
    if (req.method != "GET" && !head_only)
        co_return co_await send_error(fd, srv, 405, false, close);
    const std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
    if (path == "/") co_return co_await send_text(fd, srv, 200, hello, head_only, close);
    if (path.starts_with("/file/"))
        co_return co_await send_file(fd, srv, path.substr(6), head_only, close);
    co_return co_await send_error(fd, srv, 404, head_only, close);
}

/// After the last answer (an error, or Connection: close): stops sending (FIN), then reads and
/// drops what the client still sends, until it closes or for a second at most. Closing with unread
/// bytes would reset the connection, and a reset can destroy the answer before the client reads it.
corio::task<void> drain(int fd) {
    ::shutdown(fd, SHUT_WR);
    corio::context& ctx = *corio::context::current();
    const std::int64_t deadline = ctx.now(corio::clock_type::monotonic) + 1'000'000'000;
    std::array<std::byte, 4096> sink;
    for (;;) {
        const nanoseconds left(deadline - ctx.now(corio::clock_type::monotonic));
        corio::result<std::size_t> n = co_await corio::with_timeout(
            left, [&](std::stop_token stop) { return corio::recv(fd, sink, 0, stop); });
        if (!n || *n == 0) co_return;
    }
}

/// One connection: requests are answered in order until the client closes, asks to, times
/// out, errs, or shutdown begins.
corio::task<void> serve(int fd, server& srv) {
    std::array<char, 2 * max_head> in;  // received bytes not consumed yet: [0, have)
    std::size_t have = 0;
    // The deadline of the request being read: its head and body must both arrive before it.
    std::int64_t deadline = 0;
    auto receive = [&](std::span<char> into) {
        const nanoseconds left(deadline -
                               corio::context::current()->now(corio::clock_type::monotonic));
        return corio::with_timeout(left, [&, into](std::stop_token stop) {
            return corio::recv(fd, std::as_writable_bytes(into), 0, stop);
        });
    };
    for (bool open = true; open;) {
        deadline =
            corio::context::current()->now(corio::clock_type::monotonic) + srv.timeout.count();
        std::size_t head_end;  // where the empty line ending the head starts
        int status = 0;        // an error to answer before closing
        while ((head_end = std::string_view(in.data(), have).find("\r\n\r\n")) ==
               std::string_view::npos) {
            if (have >= max_head) {
                status = 431;
                break;
            }
            corio::result<std::size_t> n = co_await receive(std::span(in).subspan(have));
            if (!n || *n == 0) {  // 408 if a head was started; else a silent close
                status = (!n && n.error() == std::errc::timed_out && have > 0) ? 408 : -1;
                break;
            }
            have += *n;
        }
        request req;
        if (status == 0)
            status = head_end + 4 > max_head ? 431 : parse_head({in.data(), head_end}, req);
        if (status != 0) {
            if (status < 0) break;  // nothing to answer
            if (co_await send_error(fd, srv, status, false, true)) co_await drain(fd);
            break;
        }
        // Drop the head and the body (read and discarded) from the stream.
        std::size_t consume = head_end + 4 + req.content_length;
        while (consume > have && open) {
            consume -= have;
            corio::result<std::size_t> n =
                co_await receive(std::span(in).first(std::min(consume, in.size())));
            open = n && *n > 0;
            have = open ? *n : 0;
        }
        if (!open) break;
        have -= consume;
        std::memmove(in.data(), in.data() + consume, have);
        const bool sent = co_await respond(fd, srv, req);
        if (sent && !req.keep_alive) co_await drain(fd);  // the client may have sent more
        open = sent && req.keep_alive;
    }
    ::close(fd);
    srv.drop();
}

corio::task<void> accept_loop(int listener, server& srv, std::stop_token shutdown) {
    for (;;) {
        corio::result<int> fd = co_await corio::accept(listener);
        if (!fd) {
            if (fd.error() == std::errc::operation_canceled) co_return;  // shutdown
            // Out of fds (EMFILE, ENFILE) or memory: wait for connections to close, not spin.
            fmt::print(stderr, "http_server: accept: {}\n", fd.error().message());
            co_await corio::sleep_for(100ms);
            continue;
        }
        // Headers and body go out as separate sends: no Nagle delay between them.
        const int one = 1;
        setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ++srv.open;
        corio::spawn(*corio::context::current(), serve(*fd, srv), "connection", shutdown);
    }
}

corio::task<void> run_server(int listener, server& srv, corio::signal_set& signals) {
    std::stop_source shutdown;
    co_await corio::when_any(accept_loop(listener, srv, shutdown.get_token()), signals.wait());
    shutdown.request_stop();  // every connection's pending operation ends with ECANCELED
    srv.drop();               // the acceptor's
    co_await srv.all_closed.wait();
}

constexpr std::string_view usage =
    "usage: http_server [--backend B] [--port P] [--root DIR] [--header-timeout S]\n"
    "  --backend B         auto (default), io_uring, epoll or poll\n"
    "  --port P            port to listen on, on 127.0.0.1 (0: any free one; default 8080)\n"
    "  --root DIR          directory served under /file/ (default: the current directory)\n"
    "  --header-timeout S  seconds a request head may take to arrive, a keep-alive connection\n"
    "                      may idle, or a client may stall reading a response (default 10)\n";

bool parse_int(std::string_view text, int& out, int max) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= 0 && out <= max;
}

}  // namespace

int main(int argc, char** argv) {
    corio::context_options options{.name = "http"};
    int port = 8080, timeout = 10;
    const char* root = ".";
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help") {
            fmt::print("{}", usage);
            return 0;
        }
        const char* value = i + 1 < argc ? argv[++i] : nullptr;
        bool ok = value != nullptr;
        if (ok && arg == "--backend") {
            const std::string_view b = value;
            ok = b == "auto" || b == "io_uring" || b == "epoll" || b == "poll";
            options.backend = b == "io_uring" ? corio::backend_kind::io_uring
                              : b == "epoll"  ? corio::backend_kind::epoll
                              : b == "poll"   ? corio::backend_kind::poll
                                              : corio::backend_kind::automatic;
        } else if (ok && arg == "--port") {
            ok = parse_int(value, port, 65535);
        } else if (ok && arg == "--header-timeout") {
            ok = parse_int(value, timeout, 86400) && timeout > 0;
        } else if (ok && arg == "--root") {
            root = value;
        } else {
            ok = false;
        }
        if (!ok) {
            fmt::print(stderr, "http_server: bad argument '{}' (see --help)\n", arg);
            return 2;
        }
    }
    // Before any thread exists (the context's thread pool), so that every thread has the
    // signals blocked: they are only ever read from the signalfd.
    corio::signal_set signals{SIGINT, SIGTERM};
    std::optional<corio::context> ctx;
    try {
        ctx.emplace(options);
    } catch (const corio::error& e) {  // e.g. --backend io_uring where it is not allowed
        fmt::print(stderr, "http_server: {}\n", e.what());
        return 1;
    }
    server srv;
    srv.timeout = std::chrono::seconds(timeout);
    srv.root = ::open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (srv.root < 0) {
        fmt::print(stderr, "http_server: --root {}: {}\n", root, std::strerror(errno));
        return 1;
    }
    corio::result<int> listener =
        corio::net::listen(corio::net::ip("127.0.0.1", static_cast<std::uint16_t>(port)).value());
    if (!listener) {
        fmt::print(stderr, "http_server: listen on 127.0.0.1:{}: {}\n", port,
                   listener.error().message());
        ::close(srv.root);
        return 1;
    }
    fmt::print("http_server on http://{}/ ({}), serving {} under /file/\n",
               corio::net::local_address(*listener)->to_string(), corio::to_string(ctx->backend()),
               root);
    std::fflush(stdout);

    corio::run(*ctx, run_server(*listener, srv, signals));
    ::close(*listener);
    ::close(srv.root);
    return 0;
}
