// http/response.hpp — the head of an HTTP/1.1 response, made and parsed: pure, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace http {

/// The reason phrase of the statuses the example server answers ("Internal Server Error" for
/// any other).
std::string_view reason(int status) noexcept;

/// The status line and headers of a response whose body is `length` bytes of `type`, ending
/// with the empty line. `close` adds `Connection: close`; a 405 names the allowed methods.
std::string response_head(int status, std::uint64_t length, std::string_view type, bool close);

/// A response head as a client needs it.
struct parsed_response {
    std::string_view status_line;  ///< e.g. "HTTP/1.1 200 OK"
    int status = 0;
    std::optional<std::size_t> content_length;  ///< none: the body ends with the connection
};

/// Parses `head`, a response's status line and header lines without the empty line ending
/// them: std::nullopt unless the status line is `HTTP/1.x NNN ...` and a Content-Length, if
/// any, a number.
std::optional<parsed_response> parse_response_head(std::string_view head) noexcept;

}  // namespace http
