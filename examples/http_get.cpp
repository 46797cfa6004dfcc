// http_get — a small HTTP/1.1 client: GETs its URLs over one keep-alive connection.
//
// The URLs must all name the same server, as http://<numeric IPv4>:<port>/<path> (no DNS, no
// TLS). The requests go one after the other, each sent once the previous response is in, or
// with --pipeline all in one write before any response is read. Every response is read by its
// Content-Length (a response without one ends with the connection); its status line is printed,
// then its body, or with --quiet only its size.
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

/// A response, as far as it is printed.
struct response {
    std::string status_line;
    std::string body;
    int status = 0;
};

/// Reads one response from `fd`, `buffered` holding what was received beyond the previous one
/// (and keeping what comes beyond this one): an error if the connection fails or ends early, or
/// the response is not HTTP/1.x.
corio::task<corio::result<response>> read_response(int fd, std::string& buffered) {
    std::array<std::byte, 65536> buf;
    auto more = [&]() -> corio::task<corio::result<std::size_t>> {
        corio::result<std::size_t> n = co_await corio::recv(fd, buf);
        if (n) buffered.append(reinterpret_cast<const char*>(buf.data()), *n);
        co_return n;
    };
    std::size_t head_end;
    while ((head_end = buffered.find("\r\n\r\n")) == std::string::npos) {
        corio::result<std::size_t> n = co_await more();
        if (!n) co_return corio::result<response>::from_errno(n.error().value());
        if (*n == 0) co_return corio::result<response>::from_errno(ECONNRESET);
    }
    std::optional<http::parsed_response> head =
        http::parse_response_head({buffered.data(), head_end});
    if (!head) co_return corio::result<response>::from_errno(EPROTO);
    response r{.status_line = std::string(head->status_line), .body = {}, .status = head->status};
    std::optional<std::size_t> length = head->content_length;
    buffered.erase(0, head_end + 4);
    while (!length || buffered.size() < *length) {
        corio::result<std::size_t> n = co_await more();
        if (!n) co_return corio::result<response>::from_errno(n.error().value());
        if (*n == 0 && length) co_return corio::result<response>::from_errno(ECONNRESET);
        if (*n == 0) length = buffered.size();  // no Content-Length: the body ends with the stream
    }
    r.body = buffered.substr(0, *length);
    buffered.erase(0, *length);
    co_return r;
}

corio::task<int> get_all(const options& opt, const corio::net::address& server) {
    corio::result<int> fd = co_await corio::net::connect(server);
    if (!fd) {
        fmt::print(stderr, "http_get: connect to {}: {}\n", opt.host, fd.error().message());
        co_return 1;
    }
    std::vector<std::string> requests;
    for (int i = 0; i < opt.repeat; ++i) {
        for (const std::string& path : opt.paths)
            requests.push_back(fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", path, opt.host));
    }
    std::string all_at_once;  // --pipeline: every request in one write
    for (const std::string& r : requests) all_at_once += r;

    int exit_code = 0;
    std::string buffered;
    for (std::size_t i = 0; i < requests.size(); ++i) {
        const std::string& out = opt.pipeline ? all_at_once : requests[i];
        if (i == 0 || !opt.pipeline) {
            corio::result<std::size_t> sent =
                co_await corio::write_all(*fd, std::as_bytes(std::span(out)));
            if (!sent) {
                fmt::print(stderr, "http_get: {}: {}\n", opt.host, sent.error().message());
                exit_code = 1;
                break;
            }
        }
        corio::result<response> r = co_await read_response(*fd, buffered);
        if (!r) {
            fmt::print(stderr, "http_get: {}: {}\n", opt.host, r.error().message());
            exit_code = 1;
            break;
        }
        fmt::print("{}\n", r->status_line);
        if (opt.quiet) {
            fmt::print("({} bytes)\n", r->body.size());
        } else {
            std::fwrite(r->body.data(), 1, r->body.size(), stdout);
        }
        if (opt.fail && (r->status < 200 || r->status > 299)) exit_code = 1;
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
