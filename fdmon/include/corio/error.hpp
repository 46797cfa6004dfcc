// corio::error — the one exception type of the runtime.
//
// Thrown when something cannot be set up (no memory, fd limit, a forced backend that is
// unavailable) and for bad input to registration calls (negative or closed fd, an fd registered
// twice, removing an unknown fd). Expected runtime conditions are never exceptions.
#pragma once

#include <string>
#include <system_error>

namespace corio {

/// A failed operation: `code()` carries the errno, `operation()` names what failed
/// (e.g. "epoll_ctl(ADD, fd 7)"), `what()` is "corio: <operation>: <strerror>".
class error : public std::system_error {
public:
    error(int errnum, std::string operation);

    /// What was attempted when the error occurred.
    const std::string& operation() const noexcept { return operation_; }

private:
    std::string operation_;
};

}  // namespace corio
