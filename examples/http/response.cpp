// http/response.cpp — response heads (RFC 9112 status line, RFC 9110 reason phrases).
#include "http/response.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace http {

std::string_view reason(int status) noexcept {
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

std::string response_head(int status, std::uint64_t length, std::string_view type,
                          connection_header connection) {
    std::string_view options;
    if (connection == connection_header::keep_alive) options = "Connection: keep-alive\r\n";
    if (connection == connection_header::close) options = "Connection: close\r\n";
    return fmt::format(
        "HTTP/1.1 {} {}\r\nServer: corio\r\nContent-Length: {}\r\nContent-Type: {}\r\n{}{}\r\n",
        status, reason(status), length, type, status == 405 ? "Allow: GET, HEAD\r\n" : "", options);
}

std::optional<parsed_response> parse_response_head(std::string_view head) noexcept {
    parsed_response r;
    r.status_line = head.substr(0, head.find("\r\n"));
    const std::string_view code =
        r.status_line.substr(std::min<std::size_t>(9, r.status_line.size()), 3);
    if (r.status_line.size() < 12 || !r.status_line.starts_with("HTTP/1.") ||
        std::from_chars(code.data(), code.data() + code.size(), r.status).ptr != code.data() + 3)
        return std::nullopt;
    constexpr std::string_view name = "\r\ncontent-length:";
    auto lower = [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; };
    const auto found = std::ranges::search(head, name, lower);
    if (found.empty()) return r;
    std::string_view value = head.substr(found.end() - head.begin());
    value = value.substr(0, value.find("\r\n"));
    value.remove_prefix(std::min(value.find_first_not_of(' '), value.size()));
    std::size_t length = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec != std::errc() || value.find_first_not_of(' ', end - value.data()) != value.npos)
        return std::nullopt;
    r.content_length = length;
    return r;
}

response_frame frame_response(std::string_view bytes, bool at_end) noexcept {
    const std::size_t head_end = bytes.find("\r\n\r\n");
    if (head_end == bytes.npos) return {};
    response_frame f;
    f.head = parse_response_head(bytes.substr(0, head_end));
    f.bad = !f.head;
    if (f.bad) return f;
    const std::string_view rest = bytes.substr(head_end + 4);
    if (!f.head->content_length && !at_end) return {};
    const std::size_t length = f.head->content_length.value_or(rest.size());
    if (rest.size() < length) return {};
    f.body = rest.substr(0, length);
    f.size = head_end + 4 + length;
    return f;
}

}  // namespace http
