// http/url.cpp — URL splitting.
#include "http/url.hpp"

#include <charconv>

namespace http {

std::optional<url> parse_url(std::string_view text) noexcept {
    if (!text.starts_with("http://")) return std::nullopt;
    text.remove_prefix(7);
    url u;
    u.authority = text.substr(0, text.find('/'));
    u.path = u.authority.size() == text.size() ? "/" : text.substr(u.authority.size());
    const std::size_t colon = u.authority.rfind(':');
    if (colon == 0 || colon == u.authority.npos) return std::nullopt;
    u.host = u.authority.substr(0, colon);
    const std::string_view port = u.authority.substr(colon + 1);
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), u.port);
    if (ec != std::errc() || end != port.data() + port.size() || u.port == 0) return std::nullopt;
    return u;
}

}  // namespace http
