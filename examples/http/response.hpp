// http/response.hpp — the head of an HTTP/1.1 response: a pure function, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace http {

/// The reason phrase of the statuses the example server answers ("Internal Server Error" for
/// any other).
std::string_view reason(int status) noexcept;

/// The status line and headers of a response whose body is `length` bytes of `type`, ending
/// with the empty line. `close` adds `Connection: close`; a 405 names the allowed methods.
std::string response_head(int status, std::uint64_t length, std::string_view type, bool close);

}  // namespace http
