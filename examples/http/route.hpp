// http/route.hpp — what the http_server example answers a request with: pure functions, no I/O.
#pragma once

#include "http/request.hpp"

#include <string>

namespace http {

/// The answer to one request: a text, or a file of the server's root.
struct answer {
    int status = 200;        ///< a text answer's status (a file is 200, or 404 if it cannot be had)
    std::string file{};      ///< a plain file name (decoded) under the root; empty: a text answer
    bool head_only = false;  ///< HEAD: the headers without the body
    bool close = false;      ///< the connection ends after this answer
};

/// GET or HEAD of `/`: the greeting (200); of `/file/<name>`: that file if <name> decodes to one
/// plain name (file_name), else 404; of any other path: 404. Any other method: 405. The query
/// is ignored. Allocates the file name.
answer route(const request& req);

/// A whole text response: "Hello from corio!" for 200, else the status and its reason; without
/// the body if `head_only`, with `Connection: close` if `close`.
std::string text_response(int status, bool head_only, bool close);

}  // namespace http
