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

/// What a response says of its connection (RFC 9112 section 9.3).
enum class connection_header : std::uint8_t {
    none,        ///< nothing: an HTTP/1.1 connection persists by default
    keep_alive,  ///< `Connection: keep-alive`: an HTTP/1.0 client's connection persists
    close,       ///< `Connection: close`: the server closes the connection after this response
};

/// The status line and headers of a response whose body is `length` bytes of `type`, ending
/// with the empty line: always a Content-Length (what a persistent connection needs to frame
/// it), the Connection header `connection` names, and for a 405 the allowed methods.
std::string response_head(int status, std::uint64_t length, std::string_view type,
                          connection_header connection);

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

/// What frame_response finds at the start of a byte stream: a complete response (size > 0), an
/// incomplete one (size 0), or bytes that can never be a response (bad).
struct response_frame {
    std::optional<parsed_response> head;
    std::string_view body;
    std::size_t size = 0;  ///< the head's and the body's bytes: the next response starts there
    bool bad = false;      ///< the head is not one parse_response_head accepts
};

/// Frames the response at the start of `bytes`: its head up to the empty line, then its body by
/// Content-Length, or, without one, up to the end of the stream: `at_end` says no byte will
/// follow `bytes`. Views into `bytes`; never allocates.
response_frame frame_response(std::string_view bytes, bool at_end) noexcept;

}  // namespace http
