// http/route.hpp — what the http_server example answers a request with: pure functions, no I/O.
#pragma once

#include "http/request.hpp"
#include "http/response.hpp"

#include <string>

namespace http {

/// The answer to one request: a text, or a file of the server's root.
struct answer {
    int status = 200;        ///< a text answer's status (a file is 200, or 404 if it cannot be had)
    std::string file{};      ///< a plain file name (decoded) under the root; empty: a text answer
    bool head_only = false;  ///< HEAD: the headers without the body
    /// close: the connection ends after this answer; otherwise it persists.
    connection_header connection = connection_header::none;

    bool close() const noexcept { return connection == connection_header::close; }
};

/// GET or HEAD of `/`: the greeting (200); of `/file/<name>`: that file if <name> decodes to one
/// plain name (file_name), else 404; of any other path: 404. Any other method: 405. The query
/// is ignored. The connection persists as `persistent(req)` says, and an HTTP/1.0 client is told
/// so (keep_alive). Allocates the file name.
answer route(const request& req);

/// The answer to a request that failed with `status` (an error's, or 408): that status's text,
/// then the connection closes.
answer error_answer(int status);

/// A whole text response: "Hello from corio!" for 200, else the status and its reason; without
/// the body if `head_only`, with the Connection header `connection` names.
std::string text_response(int status, bool head_only, connection_header connection);

}  // namespace http
