// http/route.cpp — the example server's two kinds of resources: a greeting and files.
#include "http/route.hpp"

#include "http/response.hpp"

#include <fmt/format.h>

namespace http {

answer route(const request& req) {
    connection_header connection = connection_header::none;
    if (!persistent(req))
        connection = connection_header::close;
    else if (req.minor_version == 0)  // HTTP/1.0 persists only when the answer says so
        connection = connection_header::keep_alive;
    answer a{
        .status = 200, .file = {}, .head_only = req.method == "HEAD", .connection = connection};
    const std::string_view path = req.path();
    if (req.method != "GET" && !a.head_only) {
        a.status = 405;
    } else if (path.starts_with("/file/")) {
        a.file = file_name(path.substr(6)).value_or("");
        if (a.file.empty()) a.status = 404;
    } else if (path != "/") {
        a.status = 404;
    }
    return a;
}

answer error_answer(int status) {
    return {
        .status = status, .file = {}, .head_only = false, .connection = connection_header::close};
}

std::string text_response(int status, bool head_only, connection_header connection) {
    const std::string body =
        status == 200 ? "Hello from corio!\n" : fmt::format("{} {}\n", status, reason(status));
    std::string out = response_head(status, body.size(), "text/plain", connection);
    if (!head_only) out += body;
    return out;
}

}  // namespace http
