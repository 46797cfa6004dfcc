// I/O awaitables (see io.hpp). Readiness uses a temporary fd handler on the current context:
// the same code path, level-triggered, on io_uring (POLL_ADD), epoll and poll.
#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/task.hpp>

#include <cerrno>

namespace corio {

wait_ready::~wait_ready() {
    unregister();
}

void wait_ready::unregister() noexcept {
    if (!ctx_) return;
    // The handler may already be gone if the fd was closed while we waited.
    if (ctx_->has_fd_handler(fd_)) {
        try {
            ctx_->remove_fd_handler(fd_);
        } catch (const error&) {
        }
    }
    ctx_ = nullptr;
}

bool wait_ready::await_ready() noexcept {
    if (stop_.stop_requested()) {
        early_error_ = ECANCELED;
        return true;
    }
    return false;
}

bool wait_ready::await_suspend(std::coroutine_handle<> h) {
    detail::co_state* self = detail::require_coroutine("wait_readable/wait_writable");
    context* ctx = context::current();
    self->resume_point = h;
    fd_callbacks cb;
    auto fire = [](void* me) {
        auto* w = static_cast<wait_ready*>(me);
        w->unregister();  // one-shot: the coroutine re-waits if it needs to
        if (w->cancel_.complete()) co_wake(coroutine(w->cancel_.coroutine_state()));
    };
    (dir_ == direction::read ? cb.read : cb.write) = fire;
    try {
        ctx->add_fd_handler(fd_, cb, this);
    } catch (const error& e) {
        early_error_ = e.code().value();
        return false;  // resume at once with the error
    }
    ctx_ = ctx;
    cancel_.arm(std::move(stop_), *ctx, self, this,
                [](void* me) { static_cast<wait_ready*>(me)->unregister(); });
    return true;
}

result<void> wait_ready::await_resume() noexcept {
    if (early_error_) return result<void>::from_errno(early_error_);
    if (cancel_.finish()) return result<void>::from_errno(ECANCELED);
    return {};
}

}  // namespace corio
