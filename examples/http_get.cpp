// http_get — a small HTTP/1.1 client: GETs its URLs over one keep-alive connection.
//
// The requests go one after the other, each sent once the previous response is in, or with
// --pipeline all in one write before any response is read. Each response is read by its
// Content-Length (without one, it ends with the connection).
#include "common/flags.hpp"
#include "http/response.hpp"
#include "http/url.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/net.hpp>
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <unistd.h>
#include <array>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct options {
    int repeat = 1;
    bool pipeline = false, quiet = false, fail = false;
    std::string host;  // "127.0.0.1:8080": the server of every URL
    std::vector<std::string> paths;
};

/// Reads one response from `fd` and prints its status line, then its body (`quiet`: its size).
/// `buffered` holds what was received beyond the previous response, and keeps what comes beyond
/// this one. The status; an error if the connection fails or ends early, or the response is not
/// HTTP/1.x.
corio::task<corio::result<int>> print_response(int fd, std::string& buffered, bool quiet) {
    std::array<char, 65536> buf;
    for (bool at_end = false;;) {
        const http::response_frame frame = http::frame_response(buffered, at_end);
        if (frame.bad) co_return corio::result<int>::from_errno(EPROTO);
        if (frame.size > 0) {
            fmt::print("{}\n", frame.head->status_line);
            if (quiet) {
                fmt::print("({} bytes)\n", frame.body.size());
            } else {
                std::fwrite(frame.body.data(), 1, frame.body.size(), stdout);
            }
            buffered.erase(0, frame.size);  // last: the frame's views point into it
            co_return frame.head->status;
        }
        if (at_end) co_return corio::result<int>::from_errno(ECONNRESET);
        corio::result<std::size_t> n =
            co_await corio::recv(fd, std::as_writable_bytes(std::span(buf)));
        if (!n) co_return n.error();
        buffered.append(buf.data(), *n);
        at_end = *n == 0;
    }
}

corio::task<int> get_all(const options& opt, const corio::net::address& server) {
    corio::result<int> fd = co_await corio::net::connect(server);
    if (!fd) {
        fmt::print(stderr, "http_get: connect to {}: {}\n", opt.host, fd.error().message());
        co_return 1;
    }
    std::vector<std::string> requests;
    std::string all_at_once;  // --pipeline: every request in one write
    for (int i = 0; i < opt.repeat; ++i) {
        for (const std::string& path : opt.paths) {
            requests.push_back(fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", path, opt.host));
            all_at_once += requests.back();
        }
    }
    int exit_code = 0;
    std::string buffered;
    for (std::size_t i = 0; i < requests.size(); ++i) {
        const std::string& out = opt.pipeline ? all_at_once : requests[i];
        corio::result<std::size_t> sent = 0;
        if (i == 0 || !opt.pipeline)
            sent = co_await corio::write_all(*fd, std::as_bytes(std::span(out)));
        corio::result<int> status = sent.error();
        if (sent) status = co_await print_response(*fd, buffered, opt.quiet);
        if (!status) {
            fmt::print(stderr, "http_get: {}: {}\n", opt.host, status.error().message());
            exit_code = 1;
            break;
        }
        if (opt.fail && (*status < 200 || *status > 299)) exit_code = 1;
    }
    ::close(*fd);
    co_return exit_code;
}

constexpr std::string_view usage =
    "usage: http_get [--repeat N] [--pipeline] [--quiet] [--fail] URL...\n"
    "  URL         http://<IPv4 address>:<port>/<path>, all on the same server\n"
    "  --repeat N  get the URLs N times over (default 1)\n"
    "  --pipeline  send every request before reading any response\n"
    "  --quiet     print each body's size instead of the body\n"
    "  --fail      exit 1 on a status other than 2xx\n";

}  // namespace

int main(int argc, char** argv) {
    options opt;
    std::vector<std::string_view> urls;
    examples::flags flags("http_get", usage);
    flags.number("--repeat", opt.repeat, 1, 1'000'000).toggle("--pipeline", opt.pipeline);
    flags.toggle("--quiet", opt.quiet).toggle("--fail", opt.fail).operands(urls);
    if (std::optional<int> status = flags.parse(argc, argv)) return *status;
    std::optional<corio::net::address> server;
    for (std::string_view text : urls) {
        const std::optional<http::url> url = http::parse_url(text);
        corio::result<corio::net::address> address =
            url ? corio::net::ip(url->host, url->port)
                : corio::result<corio::net::address>::from_errno(EINVAL);
        if (!address || (server && opt.host != url->authority)) {
            fmt::print(stderr,
                       "http_get: bad URL '{}': expected http://<IPv4 address>:<port>/<path>, all "
                       "on one server\n",
                       text);
            return 2;
        }
        server = *address;
        opt.host = url->authority;
        opt.paths.emplace_back(url->path);
    }
    if (!server) {
        fmt::print(stderr, "http_get: no URL (see --help)\n");
        return 2;
    }
    try {
        corio::context ctx({.name = "http_get"});
        return corio::run(ctx, get_all(opt, *server));
    } catch (const corio::error& e) {  // e.g. a bad CORIO_BACKEND
        fmt::print(stderr, "http_get: {}\n", e.what());
        return 1;
    }
}
