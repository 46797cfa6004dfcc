// http/request.cpp — the request head parser: the head is split into lines only once it is
// complete (up to its empty line), then checked line by line.
#include "http/request.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace http {
namespace {

using namespace std::literals;

bool iequals(std::string_view a, std::string_view b) {
    return std::ranges::equal(a, b, [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) ==
               std::tolower(static_cast<unsigned char>(y));
    });
}

bool is_token(std::string_view s) {  // RFC 9110 token: method and header names
    return !s.empty() && s.find_first_not_of(
                             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789!#$%&'*+-.^_`|~") == s.npos;
}

bool is_control(char c) {
    return static_cast<unsigned char>(c) < ' ' || c == '\x7f';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// The part of `text` up to `separator` (or its end), removed from it with the separator.
std::string_view take_until(std::string_view& text, std::string_view separator) {
    const std::size_t end = text.find(separator);
    const std::string_view part = text.substr(0, end);
    text.remove_prefix(end == text.npos ? text.size() : end + separator.size());
    return part;
}

/// The request line (`method SP target SP HTTP/x.y`) into `req`.
error parse_request_line(std::string_view line, request& req) {
    const std::size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == line.npos || sp1 == sp2) return error::bad_request_line;
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(req.method)) return error::bad_request_line;
    if (!req.target.starts_with('/') ||
        std::ranges::any_of(req.target, [](char c) { return c == ' ' || is_control(c); }))
        return error::bad_target;
    if (version.size() != 8 || !version.starts_with("HTTP/") || !std::isdigit(version[5]) ||
        version[6] != '.' || !std::isdigit(version[7]))
        return error::bad_version;
    if (version[5] != '1') return error::unsupported_version;
    req.minor_version = version[7] - '0';
    return error::none;
}

}  // namespace

int status(error e) noexcept {
    switch (e) {
        case error::none:
            return 0;
        case error::head_too_large:
            return 431;
        case error::unsupported_version:
            return 505;
        case error::transfer_encoding:
            return 501;
        case error::body_too_large:
            return 413;
        default:
            return 400;
    }
}

std::string_view to_string(error e) noexcept {
    switch (e) {
        case error::none:
            return "no error";
        case error::head_too_large:
            return "head too large";
        case error::bad_request_line:
            return "bad request line";
        case error::bad_target:
            return "bad target";
        case error::bad_version:
            return "bad version";
        case error::unsupported_version:
            return "unsupported version";
        case error::bad_header:
            return "bad header line";
        case error::bad_host:
            return "not exactly one Host";
        case error::bad_content_length:
            return "bad Content-Length";
        case error::transfer_encoding:
            return "Transfer-Encoding not supported";
        case error::body_too_large:
            return "body too large";
    }
    return "?";
}

bool persistent(const request& req) noexcept {
    return !req.connection.close && (req.minor_version > 0 || req.connection.keep_alive);
}

parse_result parse_request(std::string_view bytes, const limits& limit) noexcept {
    const std::size_t end = bytes.find("\r\n\r\n");
    if (end == bytes.npos) {
        if (bytes.size() >= limit.max_head) return {std::nullopt, error::head_too_large};
        return {};
    }
    if (end + 4 > limit.max_head) return {std::nullopt, error::head_too_large};
    std::string_view head = bytes.substr(0, end);
    request req;
    req.head_size = end + 4;
    if (error e = parse_request_line(take_until(head, "\r\n"), req); e != error::none)
        return {std::nullopt, e};

    int hosts = 0;
    std::optional<std::size_t> length;
    while (!head.empty()) {
        const std::string_view field = take_until(head, "\r\n");
        const std::size_t colon = field.find(':');
        if (colon == field.npos || !is_token(field.substr(0, colon)))
            return {std::nullopt, error::bad_header};
        const std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
        if (std::ranges::any_of(value, [](char c) { return c != '\t' && is_control(c); }))
            return {std::nullopt, error::bad_header};
        if (iequals(name, "host")) {
            ++hosts;
        } else if (iequals(name, "transfer-encoding")) {
            return {std::nullopt, error::transfer_encoding};
        } else if (iequals(name, "content-length")) {
            std::size_t n = 0;
            auto [last, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || ec != std::errc() || last != value.data() + value.size() ||
                (length && *length != n))
                return {std::nullopt, error::bad_content_length};
            length = n;
        } else if (iequals(name, "connection")) {
            for (std::string_view rest = value; !rest.empty();) {  // a comma-separated list
                const std::string_view option = trim(take_until(rest, ","));
                if (iequals(option, "close")) req.connection.close = true;
                if (iequals(option, "keep-alive")) req.connection.keep_alive = true;
            }
        }
    }
    if (req.minor_version > 0 && hosts != 1) return {std::nullopt, error::bad_host};
    req.content_length = length.value_or(0);
    if (req.content_length > limit.max_body) return {std::nullopt, error::body_too_large};
    return {req, error::none};
}

std::optional<std::string> file_name(std::string_view encoded) {
    std::string name;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') {
            name += encoded[i];
            continue;
        }
        unsigned char c = 0;
        const char* hex = encoded.data() + i + 1;
        if (i + 3 > encoded.size() || std::from_chars(hex, hex + 2, c, 16).ptr != hex + 2)
            return std::nullopt;
        name += static_cast<char>(c);
        i += 2;
    }
    if (name.empty() || name == "." || name == ".." || name.find_first_of("/\0"sv) != name.npos)
        return std::nullopt;
    return name;
}

}  // namespace http
