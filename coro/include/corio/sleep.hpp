// corio::sleep_for / corio::sleep_until — timers as awaitables, cancellable with a stop_token.
#pragma once

#include <corio/cancel.hpp>
#include <corio/context.hpp>
#include <corio/result.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stop_token>

namespace corio {

/// `co_await sleep_until(clock, deadline_ns[, stop])`: resumes the running coroutine on its
/// current context once `clock` (of that context; the manual clock included) reaches
/// `deadline_ns`. A deadline already passed does not suspend. Returns ECANCELED if `stop` is
/// requested first (from any thread; the timer is cancelled), without suspending if it already
/// was. No allocation.
class sleep_until {
public:
    sleep_until(clock_type clock, std::int64_t deadline_ns, std::stop_token stop = {}) noexcept
        : clock_(clock), deadline_(deadline_ns), stop_(std::move(stop)) {}
    bool await_ready() noexcept;
    void await_suspend(std::coroutine_handle<> h);
    result<void> await_resume() noexcept;

private:
    detail::cancel_point cancel_;
    clock_type clock_;
    std::int64_t deadline_;
    std::stop_token stop_;
    std::optional<timer> timer_;
    bool cancelled_early_ = false;
};

/// `co_await sleep_for(duration[, clock][, stop])`: sleep_until now + `duration`.
sleep_until sleep_for(std::chrono::nanoseconds duration, clock_type clock = clock_type::monotonic,
                      std::stop_token stop = {});
inline sleep_until sleep_for(std::chrono::nanoseconds duration, std::stop_token stop) {
    return sleep_for(duration, clock_type::monotonic, std::move(stop));
}

}  // namespace corio
