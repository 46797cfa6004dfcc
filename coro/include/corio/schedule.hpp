// The aio_co_* primitives on C++20 coroutines: co_schedule, co_wake, co_enter, reschedule_self,
// plus suspend() to hand out a wake-up handle.
//
// A *coroutine* here is what QEMU calls one: the chain of frames started by corio::spawn (a
// root and the tasks it awaits). Every resumption goes through one iterative entry routine
// that records the context the coroutine runs in and, when the coroutine suspends or ends,
// enters the coroutines it woke meanwhile (depth-first, without recursion).
#pragma once

#include <corio/context.hpp>

#include <atomic>
#include <coroutine>
#include <stop_token>

namespace corio {

namespace detail {

struct co_state {
    work_item item;                        // co_schedule's hand-over to the target context
    std::coroutine_handle<> resume_point;  // the frame that continues when entered
    std::coroutine_handle<> root;          // destroyed by enter() once the coroutine ends
    std::atomic<context*> ctx{nullptr};    // where it last ran; written before each entry (J1)
    context* target = nullptr;             // co_schedule's destination
    std::atomic<const char*> scheduled{nullptr};  // who scheduled it, while it is queued (J5)
    context* reschedule_to = nullptr;             // reschedule_self: hand over once suspended (J6)
    // suspend(fn): run by enter() once it no longer touches the coroutine, which may then be
    // woken by anyone at once.
    void (*after_suspend)(void* arg, co_state* self) = nullptr;
    void* after_suspend_arg = nullptr;
    co_state* wake_head = nullptr;  // coroutines it woke on its own context (J2)
    co_state* wake_tail = nullptr;
    co_state* wake_next = nullptr;
    // The coroutine's own cancellation (spawn's stop_token): every corio operation it awaits is
    // cancelled by it as by the operation's own token.
    std::stop_token stop;
    // I/O without io_uring: the fd whose last read or recv returned less than it asked for, so
    // that the next one waits for readiness without trying first (io.cpp); -1 for none.
    int drained_fd = -1;
    bool running = false;
    bool finished = false;
};

/// The coroutine running on this thread (innermost), or null.
co_state* current_coroutine() noexcept;
/// The running coroutine, aborting with a message naming `what` if there is none.
co_state* require_coroutine(const char* what) noexcept;
/// Whether the running coroutine's own stop token (co_state::stop) has a stop request.
bool coroutine_stop_requested() noexcept;
/// co_wake for a coroutine suspended on the context whose loop runs on this thread right now
/// (a completion dispatched by that loop): the same rules, without looking the context up.
void wake_local(co_state* co);
/// Runs `co` on `ctx` (the calling thread must be its home thread) until it suspends or ends,
/// then the coroutines it woke, iteratively.
void enter(context& ctx, co_state* co);

}  // namespace detail

/// The stop token of the running coroutine (given to spawn; when_all and when_any pass theirs
/// to the tasks they start), or an empty one outside a coroutine. Every corio awaitable already
/// honours it; this is for code that wants to check it or hand it on.
std::stop_token current_stop_token() noexcept;

/// A handle to a suspended coroutine, obtained from `suspend`. Copyable; it names the
/// coroutine, not one suspension: each wake must match one suspension.
class coroutine {
public:
    coroutine() noexcept = default;
    explicit coroutine(detail::co_state* s) noexcept : state_(s) {}
    explicit operator bool() const noexcept { return state_ != nullptr; }
    detail::co_state* state() const noexcept { return state_; }
    /// The context the coroutine last ran in.
    context* home() const noexcept { return state_->ctx.load(std::memory_order_acquire); }

private:
    detail::co_state* state_ = nullptr;
};

/// Queues `co` to be resumed on `ctx`'s home thread (QEMU's aio_co_schedule). Any thread; no
/// allocation. Scheduling a coroutine that is already scheduled aborts, naming the scheduler.
void co_schedule(context& ctx, coroutine co);
/// Enters `co` on `ctx` (QEMU's aio_co_enter): now, if `ctx` is the current context and no
/// coroutine is running; after the running coroutine suspends, if one is (same context); through
/// co_schedule otherwise (another context, or a thread without one).
void co_enter(context& ctx, coroutine co);
/// Resumes `co` in the context where it last ran (QEMU's aio_co_wake), as co_enter does. A
/// coroutine may be woken from another thread before it has finished suspending: it is entered
/// only after it has. Waking the running coroutine itself aborts.
void co_wake(coroutine co);

/// `co_await suspend(fn)`: suspends the running coroutine and calls `fn(coroutine)` with its
/// handle; the coroutine continues when someone wakes it. `fn` runs once the coroutine has fully
/// suspended (on the same thread, right after), so it may hand the handle to another thread
/// that wakes or schedules it at once.
template <class Fn>
auto suspend(Fn fn) {
    struct awaiter {
        Fn fn;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            detail::co_state* self = detail::require_coroutine("suspend");
            self->resume_point = h;
            self->after_suspend = [](void* me, detail::co_state* co) {
                static_cast<awaiter*>(me)->fn(coroutine(co));
            };
            self->after_suspend_arg = this;  // lives in the suspended frame until it resumes
        }
        void await_resume() const noexcept {}
    };
    return awaiter{std::move(fn)};
}

/// `co_await reschedule_self(ctx)`: continues the running coroutine on `ctx` (QEMU's
/// aio_co_reschedule_self). Does not suspend if `ctx` is already the current context. The
/// hand-over happens after the coroutine has suspended on the old context.
struct reschedule_self {
    context& target;
    bool await_ready() const noexcept { return &target == context::current(); }
    void await_suspend(std::coroutine_handle<> h) const noexcept {
        detail::co_state* self = detail::require_coroutine("reschedule_self");
        self->resume_point = h;
        self->reschedule_to = &target;
    }
    void await_resume() const noexcept {}
};

}  // namespace corio
