// http/route.cpp — the example server's two kinds of resources: a greeting and files.
#include "http/route.hpp"

#include "http/response.hpp"

#include <fmt/format.h>

namespace http {

answer route(const request& req) {
    answer a{
        .status = 200, .file = {}, .head_only = req.method == "HEAD", .close = !req.keep_alive};
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

std::string text_response(int status, bool head_only, bool close) {
    const std::string body =
        status == 200 ? "Hello from corio!\n" : fmt::format("{} {}\n", status, reason(status));
    std::string out = response_head(status, body.size(), "text/plain", close);
    if (!head_only) out += body;
    return out;
}

}  // namespace http
