// http/response.cpp — response heads (RFC 9112 status line, RFC 9110 reason phrases).
#include "http/response.hpp"

#include <fmt/format.h>

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

std::string response_head(int status, std::uint64_t length, std::string_view type, bool close) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nServer: corio\r\nContent-Length: {}\r\nContent-Type: {}\r\n{}{}\r\n",
        status, reason(status), length, type, status == 405 ? "Allow: GET, HEAD\r\n" : "",
        close ? "Connection: close\r\n" : "");
}

}  // namespace http
