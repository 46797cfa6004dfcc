// corio I/O awaitables. This step: readiness — wait until an fd is readable or writable.
#pragma once

#include <corio/cancel.hpp>
#include <corio/context.hpp>
#include <corio/result.hpp>

#include <coroutine>
#include <stop_token>

namespace corio {

/// `co_await wait_readable(fd[, stop])` / `wait_writable`: resumes the running coroutine, on
/// its current context, once `fd` is readable (or hung up / in error) or writable. Registers a
/// temporary fd handler for the duration, so `fd` must not have another handler on this
/// context (EEXIST); a negative or closed fd gives EBADF; a stop request gives ECANCELED (from
/// any thread; the handler is removed). Errors are values, never exceptions. No allocation
/// beyond what the backend needs to register the fd.
class wait_ready {
public:
    enum class direction : unsigned char { read, write };

    wait_ready(int fd, direction dir, std::stop_token stop = {}) noexcept
        : fd_(fd), dir_(dir), stop_(std::move(stop)) {}
    ~wait_ready();
    wait_ready(const wait_ready&) = delete;
    wait_ready& operator=(const wait_ready&) = delete;

    bool await_ready() noexcept;
    bool await_suspend(std::coroutine_handle<> h);
    result<void> await_resume() noexcept;

private:
    void unregister() noexcept;

    detail::cancel_point cancel_;
    int fd_;
    direction dir_;
    std::stop_token stop_;
    context* ctx_ = nullptr;  // where the handler is registered, while it is
    int early_error_ = 0;     // failed before suspending (errno)
};

inline wait_ready wait_readable(int fd, std::stop_token stop = {}) {
    return {fd, wait_ready::direction::read, std::move(stop)};
}
inline wait_ready wait_writable(int fd, std::stop_token stop = {}) {
    return {fd, wait_ready::direction::write, std::move(stop)};
}

}  // namespace corio
