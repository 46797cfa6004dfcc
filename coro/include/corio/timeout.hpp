// corio::with_timeout — bound any cancellable operation by a duration.
#pragma once

#include <corio/context.hpp>
#include <corio/result.hpp>
#include <corio/task.hpp>

#include <cerrno>
#include <chrono>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace corio {

/// `co_await with_timeout(duration, make_op)`: runs the operation `make_op(stop_token)` (any
/// corio awaitable taking a stop_token, e.g. `[&](auto st) { return recv(fd, buf, 0, st); }`)
/// and cancels it for real if `duration` passes first, returning ETIMEDOUT in its result.
/// A result that completed before the deadline is returned as it is. Runs on the current
/// context's monotonic clock; costs one task frame (pooled) and one timer, no other allocation.
template <class MakeOp>
auto with_timeout(std::chrono::nanoseconds duration, MakeOp make_op) -> task<std::remove_cvref_t<
    decltype(std::declval<std::invoke_result_t<MakeOp&, std::stop_token>>().await_resume())>> {
    using result_type = std::remove_cvref_t<
        decltype(std::declval<std::invoke_result_t<MakeOp&, std::stop_token>>().await_resume())>;
    std::stop_source source;
    bool expired = false;
    timer deadline(*context::current(), clock_type::monotonic, [&] {
        expired = true;
        source.request_stop();
    });
    deadline.arm_after(duration);
    result_type r = co_await make_op(source.get_token());
    deadline.cancel();
    if (expired && !r && r.error() == std::errc::operation_canceled) {
        co_return result_type::from_errno(ETIMEDOUT);
    }
    co_return r;
}

}  // namespace corio
