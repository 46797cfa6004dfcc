// Sleep awaitables: a timer on the current context whose callback wakes the coroutine, raced
// against a stop request through detail::cancel_point.
#include <corio/sleep.hpp>
#include <corio/task.hpp>

namespace corio {

bool sleep_until::await_ready() noexcept {
    if (stop_.stop_requested() || detail::coroutine_stop_requested()) {
        cancelled_early_ = true;
        return true;
    }
    context* ctx = context::current();
    return ctx && ctx->now(clock_) >= deadline_;
}

void sleep_until::await_suspend(std::coroutine_handle<> h) {
    detail::co_state* self = detail::require_coroutine("sleep");
    self->resume_point = h;
    context& ctx = *context::current();
    timer_.emplace(ctx, clock_, [this] {
        if (cancel_.complete_on_home()) detail::wake_local(cancel_.coroutine_state());
    });
    timer_->arm_at(deadline_);
    cancel_.arm(std::move(stop_), ctx, self, this,
                [](void* me) { static_cast<sleep_until*>(me)->timer_->cancel(); });
}

result<void> sleep_until::await_resume() noexcept {
    const bool cancelled = cancelled_early_ || cancel_.finish();
    timer_.reset();
    if (cancelled) return result<void>::from_errno(ECANCELED);
    return {};
}

sleep_until sleep_for(std::chrono::nanoseconds duration, clock_type clock, std::stop_token stop) {
    context* ctx = context::current();
    if (!ctx) detail::misuse("sleep_for() used on a thread without a context");
    return sleep_until(clock, ctx->now(clock) + duration.count(), std::move(stop));
}

}  // namespace corio
