// The http_server example's request parser (examples/http/): pure functions, so every case is
// bytes in, a request or a precise error out — no socket, no loop.
#include "http/request.hpp"
#include "http/request_stream.hpp"
#include "http/response.hpp"
#include "http/route.hpp"
#include "http/url.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

using http::error;
using http::parse_request;

namespace {

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

error problem(std::string_view bytes, http::limits limit = {}) {
    return parse_request(bytes, limit).problem;
}

/// Feeds `bytes` to `in` `step` bytes at a time, as recv would.
void feed(http::request_stream& in, std::string_view bytes, std::size_t step) {
    for (std::size_t at = 0; at < bytes.size(); at += step) {
        const std::string_view part = bytes.substr(at, step);
        REQUIRE(in.space().size() >= part.size());
        std::memcpy(in.space().data(), part.data(), part.size());
        in.received(part.size());
    }
}

}  // namespace

TEST_CASE("a complete request head is parsed into views of the bytes") {
    const std::string bytes = "GET /file/a?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    const http::parse_result r = parse_request(bytes);
    REQUIRE(r.head);
    CHECK(r.head->method == "GET");
    CHECK(r.head->target == "/file/a?x=1");
    CHECK(r.head->path() == "/file/a");
    CHECK(r.head->minor_version == 1);
    CHECK(http::persistent(*r.head));
    CHECK(r.head->content_length == 3);
    CHECK(r.head->head_size == bytes.size() - 3);
    CHECK(r.head->target.data() >= bytes.data());
}

TEST_CASE("every prefix of a valid head is incomplete, never an error") {
    for (std::size_t n = 0; n < get_root.size(); ++n) {
        CAPTURE(n);
        CHECK(parse_request(get_root.substr(0, n)).incomplete());
    }
    CHECK(parse_request(get_root).head);
}

TEST_CASE("pipelined requests: the parser stops at the first head's end") {
    const std::string two = std::string(get_root) + "HEAD /b HTTP/1.1\r\nHost: y\r\n\r\n";
    const http::parse_result first = parse_request(two);
    REQUIRE(first.head);
    CHECK(first.head->head_size == get_root.size());
    const http::parse_result second = parse_request(std::string_view(two).substr(get_root.size()));
    REQUIRE(second.head);
    CHECK(second.head->method == "HEAD");
    CHECK(second.head->target == "/b");
}

TEST_CASE("a head over max_head is refused with 431, complete or not") {
    const std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'a');
    CHECK(problem(big) == error::head_too_large);
    CHECK(problem(big + "\r\n\r\n") == error::head_too_large);
    CHECK(http::status(error::head_too_large) == 431);
    // Exactly max_head bytes, empty line included, is still accepted.
    const http::limits small{.max_head = get_root.size()};
    CHECK(parse_request(get_root, small).head);
    CHECK(problem(get_root, {.max_head = get_root.size() - 1}) == error::head_too_large);
}

TEST_CASE("bad request lines are refused with 400, a version other than 1.x with 505") {
    CHECK(problem("GARBAGE\r\n\r\n") == error::bad_request_line);
    CHECK(problem("GET /\r\n\r\n") == error::bad_request_line);
    CHECK(problem("G(T / HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_request_line);
    CHECK(problem(" / HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_request_line);
    CHECK(problem("GET x HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_target);
    CHECK(problem("GET http://a/ HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_target);
    CHECK(problem("GET / x HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_target);
    CHECK(problem("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n") == error::bad_target);
    CHECK(problem("GET / HTTP/1.10\r\nHost: x\r\n\r\n") == error::bad_version);
    CHECK(problem("GET / http/1.1\r\nHost: x\r\n\r\n") == error::bad_version);
    CHECK(problem("GET / HTTP/2.0\r\nHost: x\r\n\r\n") == error::unsupported_version);
    CHECK(http::status(error::unsupported_version) == 505);
    CHECK(http::status(error::bad_target) == 400);
}

TEST_CASE("header lines: a colon, a token name, no control characters, one Host in HTTP/1.1") {
    CHECK(problem("GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n") == error::bad_header);
    CHECK(problem("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n") == error::bad_header);
    CHECK(problem("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n") == error::bad_header);
    CHECK(parse_request("GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\r\n\r\n").head);
    CHECK(problem("GET / HTTP/1.1\r\n\r\n") == error::bad_host);
    CHECK(problem("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == error::bad_host);
    CHECK(parse_request("GET / HTTP/1.0\r\n\r\n").head);  // HTTP/1.0 needs no Host
}

TEST_CASE("bodies: Content-Length only, within max_body, and consistent") {
    auto with = [](std::string_view headers) {
        return "POST / HTTP/1.1\r\nHost: x\r\n" + std::string(headers) + "\r\n";
    };
    CHECK(problem(with("Content-Length: -1\r\n")) == error::bad_content_length);
    CHECK(problem(with("Content-Length: 1x\r\n")) == error::bad_content_length);
    CHECK(problem(with("Content-Length:\r\n")) == error::bad_content_length);
    CHECK(problem(with("Content-Length: 1\r\nContent-Length: 2\r\n")) == error::bad_content_length);
    CHECK(parse_request(with("Content-Length: 2\r\ncontent-length: 2\r\n")).head);
    CHECK(problem(with("Content-Length: 99999999999999999999999\r\n")) ==
          error::bad_content_length);
    CHECK(problem(with("Content-Length: 65537\r\n")) == error::body_too_large);
    CHECK(parse_request(with("Content-Length: 65536\r\n")).head);
    CHECK(problem(with("Transfer-Encoding: chunked\r\n")) == error::transfer_encoding);
    CHECK(http::status(error::body_too_large) == 413);
    CHECK(http::status(error::transfer_encoding) == 501);
}

TEST_CASE("the request line gives the version, Connection headers their options") {
    const http::parse_result r = parse_request(
        "GET / HTTP/1.0\r\nConnection: Upgrade ,KEEP-Alive\r\nConnection: x, Close\r\n\r\n");
    REQUIRE(r.head);
    CHECK(r.head->minor_version == 0);
    CHECK(r.head->connection.keep_alive);
    CHECK(r.head->connection.close);
    const http::parse_result plain = parse_request(get_root);
    CHECK(plain.head->minor_version == 1);
    CHECK(!plain.head->connection.keep_alive);
    CHECK(!plain.head->connection.close);
    // Tokens are whole list items, not substrings.
    const http::parse_result near =
        parse_request("GET / HTTP/1.0\r\nConnection: keep-alive-ish, closed, xclose\r\n\r\n");
    CHECK(!near.head->connection.keep_alive);
    CHECK(!near.head->connection.close);
    CHECK(parse_request("GET / HTTP/1.9\r\nHost: x\r\n\r\n").head->minor_version == 9);
}

TEST_CASE("persistence: HTTP/1.1 unless Connection: close, HTTP/1.0 only with keep-alive") {
    auto persists = [](std::string_view bytes) {
        const http::parse_result r = parse_request(bytes);
        REQUIRE(r.head);
        return http::persistent(*r.head);
    };
    CHECK(persists("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.2\r\nHost: x\r\n\r\n"));  // a later 1.x is as 1.1
    CHECK(!persists("GET / HTTP/1.0\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.0\r\nconnection:Keep-Alive\r\n\r\n"));
    CHECK(persists("GET / HTTP/1.0\r\nConnection: upgrade,\tKEEP-ALIVE \r\n\r\n"));
    CHECK(persists("GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
    CHECK(!persists("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n"));
}

TEST_CASE("file names: decoded, then one plain name, else nothing (no traversal)") {
    CHECK(http::file_name("small") == "small");
    CHECK(http::file_name("a%20b") == "a b");
    CHECK(http::file_name("%41") == "A");
    for (std::string_view bad : {"", ".", "..", "%2e%2e", "%2E%2E", "../secret", "..%2fsecret",
                                 "%2e%2e%2fsecret", "%2fetc%2fpasswd", "sub/file", "%00",
                                 "small%00", "%zz", "%2", "%", "%+1", "sub%2f..%2f..%2fsecret"}) {
        CAPTURE(bad);
        CHECK(!http::file_name(bad));
    }
}

TEST_CASE("a request stream takes requests split anyhow, and drops bodies as they arrive") {
    const std::string stream = std::string(get_root) +
                               "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
                               "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n";
    for (std::size_t step : {1u, 2u, 7u, 64u, 4096u}) {
        CAPTURE(step);
        http::request_stream in;
        std::string seen;
        std::size_t at = 0;
        while (seen.size() < 3) {
            http::parse_result r = in.front();
            REQUIRE(r.problem == error::none);
            if (r.head) {
                seen += r.head->method.front();
                in.pop();
                continue;
            }
            REQUIRE(at < stream.size());
            const std::size_t n = std::min(step, stream.size() - at);
            feed(in, std::string_view(stream).substr(at, n), n);
            at += n;
        }
        CHECK(seen == "GPH");
        CHECK(!in.begun());
        CHECK(in.front().incomplete());
    }
}

TEST_CASE("a request stream reports an oversize head, and always has room before") {
    http::request_stream in;
    const std::string big = "GET / HTTP/1.1\r\nX: " + std::string(20000, 'a');
    std::size_t at = 0;
    while (in.front().incomplete()) {
        REQUIRE(!in.space().empty());
        const std::size_t n = std::min(in.space().size(), big.size() - at);
        feed(in, std::string_view(big).substr(at, n), n);
        at += n;
    }
    CHECK(in.front().problem == error::head_too_large);
}

TEST_CASE("response heads carry the status, the length and the Connection header asked for") {
    using http::connection_header;
    CHECK(http::response_head(404, 14, "text/plain", connection_header::close) ==
          "HTTP/1.1 404 Not Found\r\nServer: corio\r\nContent-Length: 14\r\n"
          "Content-Type: text/plain\r\nConnection: close\r\n\r\n");
    CHECK(http::response_head(200, 0, "text/plain", connection_header::keep_alive) ==
          "HTTP/1.1 200 OK\r\nServer: corio\r\nContent-Length: 0\r\n"
          "Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\n");
    CHECK(http::response_head(200, 7, "a/b", connection_header::none) ==
          "HTTP/1.1 200 OK\r\nServer: corio\r\nContent-Length: 7\r\nContent-Type: a/b\r\n\r\n");
    CHECK(http::response_head(405, 0, "text/plain", connection_header::none)
              .find("Allow: GET, HEAD\r\n") != std::string::npos);
    CHECK(http::reason(431) == "Request Header Fields Too Large");
}

TEST_CASE("response heads are parsed: status, and Content-Length if any") {
    const auto r = http::parse_response_head(
        "HTTP/1.1 404 Not Found\r\nServer: corio\r\ncontent-LENGTH:  14 \r\nX: y");
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(r->status_line == "HTTP/1.1 404 Not Found");
    CHECK(r->content_length == 14);
    CHECK(!http::parse_response_head("HTTP/1.0 200 OK\r\nX: y")->content_length);
    for (std::string_view bad : {"", "HTTP/1.1", "HTTP/1.1 2x0 OK", "HTTP/2 200 OK",
                                 "HTTP/1.1 200 OK\r\nContent-Length: 1x", "ICY 200 OK"}) {
        CAPTURE(bad);
        CHECK(!http::parse_response_head(bad));
    }
}

TEST_CASE("responses are framed by Content-Length, or by the end of the stream without one") {
    const std::string two =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 No\r\n\r\nx";
    const http::response_frame first = http::frame_response(two, false);
    REQUIRE(first.head);
    CHECK(first.head->status == 200);
    CHECK(first.body == "abc");
    CHECK(first.size == two.find("abc") + 3);
    for (std::size_t n = 0; n < first.size; ++n) {
        CAPTURE(n);
        CHECK(http::frame_response(std::string_view(two).substr(0, n), false).size == 0);
    }
    const std::string_view rest = std::string_view(two).substr(first.size);
    CHECK(http::frame_response(rest, false).size == 0);  // no Content-Length: more may come
    const http::response_frame last = http::frame_response(rest, true);
    CHECK(last.head->status == 404);
    CHECK(last.body == "x");
    CHECK(last.size == rest.size());
    CHECK(http::frame_response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", true).size == 0);
    CHECK(http::frame_response("SSH-2.0\r\n\r\n", false).bad);
    CHECK(!http::frame_response("HTTP/1.1 200 OK\r\n", true).bad);
}

TEST_CASE("routes: the greeting, files by plain name, 404 and 405") {
    auto route = [](std::string_view bytes) {
        const http::parse_result r = parse_request(bytes);
        REQUIRE(r.head);
        return http::route(*r.head);
    };
    const http::answer root = route("GET /?q HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(root.status == 200);
    CHECK(root.file.empty());
    CHECK(!root.head_only);
    CHECK(root.connection == http::connection_header::none);
    CHECK(!root.close());
    const http::answer file = route("HEAD /file/a%20b HTTP/1.0\r\n\r\n");
    CHECK(file.file == "a b");
    CHECK(file.head_only);
    CHECK(file.connection == http::connection_header::close);
    CHECK(file.close());
    for (std::string_view bad : {"/file/..", "/file/", "/file/a%2fb", "/other"}) {
        CAPTURE(bad);
        const http::answer a =
            route(std::string("GET ") + std::string(bad) + " HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(a.status == 404);
        CHECK(a.file.empty());
    }
    const http::answer post = route("POST /file/a HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(post.status == 405);
    CHECK(post.file.empty());
}

TEST_CASE("routes: the answer says what becomes of the connection") {
    using http::connection_header;
    auto connection = [](std::string_view bytes) {
        const http::parse_result r = parse_request(bytes);
        REQUIRE(r.head);
        return http::route(*r.head).connection;
    };
    CHECK(connection("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == connection_header::none);
    CHECK(connection("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n") ==
          connection_header::none);
    CHECK(connection("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") ==
          connection_header::close);
    CHECK(connection("GET /file/a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") ==
          connection_header::keep_alive);
    CHECK(connection("GET /missing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") ==
          connection_header::keep_alive);
    CHECK(connection("GET / HTTP/1.0\r\n\r\n") == connection_header::close);
    CHECK(connection("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") ==
          connection_header::close);
    const http::answer failed = http::error_answer(400);
    CHECK(failed.status == 400);
    CHECK(failed.close());
}

TEST_CASE("text responses: the greeting or the status, without a body for HEAD") {
    using http::connection_header;
    CHECK(http::text_response(200, false, connection_header::none) ==
          "HTTP/1.1 200 OK\r\nServer: corio\r\nContent-Length: 18\r\n"
          "Content-Type: text/plain\r\n\r\nHello from corio!\n");
    const std::string missing = http::text_response(404, false, connection_header::close);
    CHECK(missing.ends_with("Connection: close\r\n\r\n404 Not Found\n"));
    const std::string kept = http::text_response(200, false, connection_header::keep_alive);
    CHECK(kept.ends_with("Connection: keep-alive\r\n\r\nHello from corio!\n"));
    const std::string head = http::text_response(404, true, connection_header::close);
    CHECK(head.ends_with("\r\n\r\n"));
    CHECK(head.find("Content-Length: 14\r\n") != std::string::npos);
}

TEST_CASE("URLs: http://host:port and a path, nothing else") {
    const auto u = http::parse_url("http://127.0.0.1:8080/file/a?b");
    REQUIRE(u);
    CHECK(u->authority == "127.0.0.1:8080");
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 8080);
    CHECK(u->path == "/file/a?b");
    CHECK(http::parse_url("http://127.0.0.1:1")->path == "/");
    for (std::string_view bad : {"", "http://", "https://a:1/", "http://a/", "http://a:0/",
                                 "http://a:65536/", "http://:80/", "http://a:8x/", "ftp://a:1/"}) {
        CAPTURE(bad);
        CHECK(!http::parse_url(bad));
    }
}
