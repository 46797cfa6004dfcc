// http/request.hpp — an HTTP/1.1 request head from bytes: pure functions, no I/O.
//
// The http_server example receives bytes and hands them to parse_request until it answers with a
// request or an error; a fuzzer or a unit test can hand it any bytes the same way. What is
// accepted: `method SP origin-form-target SP HTTP/1.x`, CRLF-terminated header lines `name:
// value` (name a token, value without control characters), exactly one Host in HTTP/1.1, a
// body only by Content-Length (Transfer-Encoding is refused with 501), a head of at most
// limits::max_head bytes and a body of at most limits::max_body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace http {

/// What a server accepts.
struct limits {
    std::size_t max_head = 8 * 1024;   ///< the request line, the headers and the empty line
    std::size_t max_body = 64 * 1024;  ///< a request body (Content-Length)
};

/// Why bytes are not, and can never become, a valid request head.
enum class error : std::uint8_t {
    none,
    head_too_large,       ///< no complete head within limits::max_head bytes (431)
    bad_request_line,     ///< not `method SP target SP version`, or a method that is no token
    bad_target,           ///< not origin-form (`/...`), or with spaces or control characters
    bad_version,          ///< not `HTTP/<digit>.<digit>`
    unsupported_version,  ///< a version other than 1.x (505)
    bad_header,           ///< a header line without `:`, a bad name, or control characters
    bad_host,             ///< HTTP/1.1 without exactly one Host header
    bad_content_length,   ///< not a decimal number, or two different ones
    transfer_encoding,    ///< a Transfer-Encoding (chunked bodies are not supported: 501)
    body_too_large,       ///< a Content-Length above limits::max_body (413)
};

/// The status a server answers `e` with: 400, 413, 431, 501 or 505 (0 for error::none).
int status(error e) noexcept;

/// What `e` means, in a few words (for logs and test messages).
std::string_view to_string(error e) noexcept;

/// The options of a request's Connection headers (comma-separated tokens, any case) that decide
/// whether its connection persists.
struct connection_options {
    bool close = false;       ///< a `close` token
    bool keep_alive = false;  ///< a `keep-alive` token (HTTP/1.0's way to ask for persistence)
};

/// A request head, as views into the bytes it was parsed from.
struct request {
    std::string_view method;
    std::string_view target;  ///< as sent, query included
    int minor_version = 1;    ///< HTTP/1.<minor_version>
    connection_options connection{};
    std::size_t content_length = 0;
    std::size_t head_size = 0;  ///< the head's bytes, its empty line included: the body follows

    /// The target without its query (`?...`).
    std::string_view path() const noexcept { return target.substr(0, target.find('?')); }
};

/// Whether the connection stays open after the answer to `req` (RFC 9112 section 9.3): not with
/// a `close` option; otherwise always in HTTP/1.1 (and later 1.x), only with `keep-alive` in
/// HTTP/1.0.
bool persistent(const request& req) noexcept;

/// parse_request's answer. Neither member set: the head is not complete yet (more bytes needed).
struct parse_result {
    std::optional<request> head;  ///< a complete, valid head
    error problem = error::none;  ///< the bytes can never start a valid request

    bool incomplete() const noexcept { return !head && problem == error::none; }
};

/// Parses the request head at the start of `bytes`; what follows it (the body, pipelined
/// requests) is left alone. Never allocates, never throws; the views point into `bytes`.
parse_result parse_request(std::string_view bytes, const limits& limit = {}) noexcept;

/// A file name taken from a URL: `encoded` with its %XX escapes decoded, if it then is one plain
/// name (not empty, not "." or "..", no '/', no NUL); std::nullopt otherwise, also for a broken
/// escape. Allocates the decoded name.
std::optional<std::string> file_name(std::string_view encoded);

}  // namespace http
