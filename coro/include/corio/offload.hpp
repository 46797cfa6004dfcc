// corio::offload — run blocking work on the current context's thread pool and co_await it.
#pragma once

#include <corio/context.hpp>
#include <corio/error.hpp>
#include <corio/result.hpp>
#include <corio/schedule.hpp>
#include <corio/task.hpp>
#include <corio/thread_pool.hpp>

#include <cerrno>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace corio {

/// `co_await offload(fn[, stop])`: runs `fn()` on a worker of the current context's thread pool
/// and continues the coroutine on its context with fn's value as a result<R> (result<void> for
/// a void fn). An exception thrown by fn is rethrown here. A stop request (or the coroutine's
/// own stop token) gives ECANCELED: at once if fn has not started (it never runs); if it is
/// running, once it returns (fn cannot be interrupted, and may use what it captured until
/// then), its result destroyed unseen. EAGAIN if the pool has no worker and cannot start one.
/// Allocates one job.
template <class Fn>
class offload_awaiter {
public:
    using value_type = std::invoke_result_t<Fn&>;

    offload_awaiter(Fn fn, std::stop_token stop) : fn_(std::move(fn)), stop_(std::move(stop)) {}
    offload_awaiter(const offload_awaiter&) = delete;
    offload_awaiter& operator=(const offload_awaiter&) = delete;

    bool await_ready() const noexcept { return false; }  // await_suspend decides

    bool await_suspend(std::coroutine_handle<> h) {
        detail::co_state* self = detail::require_coroutine("offload");
        if (stop_.stop_requested() || self->stop.stop_requested()) {
            errno_ = ECANCELED;
            return false;
        }
        self->resume_point = h;
        auto job = std::make_unique<offload_job>(std::move(fn_), this, self);
        try {
            self->ctx.load(std::memory_order_relaxed)
                ->pool()
                .submit_job(std::move(job), std::move(stop_), self->stop);
        } catch (const error& e) {
            errno_ = e.code().value();
            return false;
        }
        return true;
    }

    result<value_type> await_resume() {
        if (errno_ != 0) return result<value_type>::from_errno(errno_);
        if (error_) std::rethrow_exception(error_);
        if constexpr (std::is_void_v<value_type>) {
            return {};
        } else {
            return result<value_type>(std::move(*value_));
        }
    }

private:
    class offload_job final : public detail::function_job<Fn> {
    public:
        offload_job(Fn fn, offload_awaiter* waiter, detail::co_state* co)
            : detail::function_job<Fn>(std::move(fn)), waiter_(waiter), co_(co) {}

    private:
        void complete(bool cancelled) override {
            if (cancelled) {
                waiter_->errno_ = ECANCELED;
            } else {
                waiter_->error_ = this->error_;
                waiter_->value_ = std::move(this->value_);
            }
            detail::wake_local(co_);  // runs in a BH pass of the coroutine's context
        }

        offload_awaiter* waiter_;
        detail::co_state* co_;
    };

    Fn fn_;
    std::stop_token stop_;
    int errno_ = 0;
    std::exception_ptr error_;
    std::optional<detail::pool_value<value_type>> value_;
};

namespace detail {
// GCC 12 destroys twice each by-copy capture of a lambda written in a full-expression that
// contains a co_await: it builds the capture's initializer as a separate temporary of the
// coroutine frame, copies it bitwise into the closure and destroys both. Nothing offload()
// does can prevent it (it happens before offload is called), so where it would happen —
// an rvalue callable with a non-trivial destructor — offload is refused at compile time.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
inline constexpr bool gcc12_destroys_captures_twice = true;
#else
inline constexpr bool gcc12_destroys_captures_twice = false;
#endif
}  // namespace detail

/// `fn` is copied (an lvalue) or moved (an rvalue) into the job. With GCC 12, an rvalue `fn`
/// must be trivially destructible: see the static_assert below for why and what to write.
template <class Fn>
offload_awaiter<std::decay_t<Fn>> offload(Fn&& fn, std::stop_token stop = {}) {
    static_assert(!detail::gcc12_destroys_captures_twice || std::is_lvalue_reference_v<Fn> ||
                      std::is_trivially_destructible_v<std::decay_t<Fn>>,
                  "GCC 12 destroys twice the by-copy captures of a lambda written inside a "
                  "co_await expression (a double free for a std::string). Capture by "
                  "reference ([&]: the coroutine stays suspended until the work has returned, "
                  "so its locals outlive it), or name the lambda in a statement of its own and "
                  "pass it as an lvalue: offload(fn) copies it, offload(std::ref(fn)) uses it "
                  "in place (move-only captures). clang has no such bug.");
    return {std::forward<Fn>(fn), std::move(stop)};
}

}  // namespace corio
