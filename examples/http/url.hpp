// http/url.hpp — the URLs http_get takes: a pure function, no I/O, no DNS.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace http {

/// `http://<host>:<port><path>`, as views into the URL.
struct url {
    std::string_view authority;  ///< `<host>:<port>`, what the Host header says
    std::string_view host;       ///< not checked: the caller resolves it (e.g. a numeric address)
    std::uint16_t port = 0;      ///< never 0
    std::string_view path;       ///< from its '/' on; "/" when the URL has none
};

/// Splits `text`; std::nullopt unless it is `http://`, a host, `:` and a port from 1 to 65535,
/// then nothing or a path starting with '/'.
std::optional<url> parse_url(std::string_view text) noexcept;

}  // namespace http
