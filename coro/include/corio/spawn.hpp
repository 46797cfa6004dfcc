// corio::spawn, corio::join_handle, corio::run — starting root coroutines on a context.
#pragma once

#include <corio/context.hpp>
#include <corio/schedule.hpp>
#include <corio/task.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <stop_token>
#include <utility>

namespace corio {

namespace detail {

/// What a spawned task and its join handle share. Two references: the running root coroutine
/// and the handle. `phase` orders the hand-over: the root publishes its result, then exchanges
/// in `done`; a joiner publishes itself, then CASes `running` → `joined`; whoever comes second
/// sees the other's data.
struct join_state_base {
    enum phase_t : int { running, joined, done };

    explicit join_state_base(const char* n) noexcept : name(n) {}
    virtual ~join_state_base() = default;
    join_state_base(const join_state_base&) = delete;
    join_state_base& operator=(const join_state_base&) = delete;

    std::atomic<int> refs{2};
    std::atomic<int> phase{running};
    co_state* joiner = nullptr;         // the coroutine awaiting the result, once `joined`
    context* notify_on_done = nullptr;  // run(): the blocked caller's context, to wake
    std::exception_ptr error;
    bool observed = false;  // the result or exception was taken by a joiner
    const char* const name;

    /// Called by the root once the result is stored: wakes a registered joiner (co_wake).
    void complete() noexcept;
    /// Drops one reference; the last one reports an exception nobody took, then frees.
    void release() noexcept;
};

template <class T>
struct join_state : join_state_base {
    using join_state_base::join_state_base;
    std::optional<T> value;
};
template <>
struct join_state<void> : join_state_base {
    using join_state_base::join_state_base;
};

/// The root's reference to the shared state, held as a coroutine parameter so that it is
/// released even when the root frame is destroyed without having run (its context died first).
template <class T>
struct state_ref {
    join_state<T>* state;
    explicit state_ref(join_state<T>* s) noexcept : state(s) {}
    state_ref(state_ref&& other) noexcept : state(std::exchange(other.state, nullptr)) {}
    state_ref(const state_ref&) = delete;
    state_ref& operator=(const state_ref&) = delete;
    state_ref& operator=(state_ref&&) = delete;
    ~state_ref() {
        if (state) state->release();
    }
};

/// The detached coroutine at the root of a spawned task: it carries the coroutine's state
/// (co_state), is started by a one-shot BH on its context through enter(), and is freed by
/// enter() once it has finished.
struct root_coroutine {
    struct promise_type : frame_allocated {
        co_state co;

        root_coroutine get_return_object() noexcept {
            auto h = std::coroutine_handle<promise_type>::from_promise(*this);
            co.root = h;
            co.resume_point = h;
            return {h};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        auto final_suspend() noexcept {
            struct mark_finished {
                co_state& co;
                bool await_ready() const noexcept { return false; }
                void await_suspend(std::coroutine_handle<>) const noexcept { co.finished = true; }
                void await_resume() const noexcept {}
            };
            return mark_finished{co};
        }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept { std::terminate(); }  // the body catches all
    };
    std::coroutine_handle<promise_type> handle;
};

template <class T>
root_coroutine run_root(task<T> body, state_ref<T> ref) {
    join_state<T>* state = ref.state;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(body);
        } else {
            state->value.emplace(co_await std::move(body));
        }
    } catch (...) {
        state->error = std::current_exception();
    }
    state->complete();
}

/// Owns a root frame until its starting BH runs; destroys it if the BH never does.
struct root_starter {
    context* ctx;
    std::coroutine_handle<root_coroutine::promise_type> handle;
    root_starter(context& c, std::coroutine_handle<root_coroutine::promise_type> h) noexcept
        : ctx(&c), handle(h) {}
    root_starter(root_starter&& other) noexcept
        : ctx(other.ctx), handle(std::exchange(other.handle, {})) {}
    root_starter(const root_starter&) = delete;
    root_starter& operator=(const root_starter&) = delete;
    root_starter& operator=(root_starter&&) = delete;
    ~root_starter() {
        if (handle) handle.destroy();
    }
    void operator()() { enter(*ctx, &std::exchange(handle, {}).promise().co); }
};

}  // namespace detail

/// The result of a spawned task. Move-only; dropping it detaches the task (it keeps running).
/// Awaiting it (once, from a coroutine running on any context) returns the task's value or
/// rethrows its exception. An exception that no joiner takes is reported on stderr with the
/// task's name when the last reference goes, never silently lost.
template <class T>
class join_handle {
public:
    join_handle() noexcept = default;
    explicit join_handle(detail::join_state<T>* s) noexcept : state_(s) {}
    join_handle(join_handle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    join_handle& operator=(join_handle&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::exchange(other.state_, nullptr);
        }
        return *this;
    }
    join_handle(const join_handle&) = delete;
    join_handle& operator=(const join_handle&) = delete;
    ~join_handle() { reset(); }

    /// The task has finished (value or exception available).
    bool done() const noexcept {
        return state_ &&
               state_->phase.load(std::memory_order_acquire) == detail::join_state_base::done;
    }

    /// The result of a finished task (rethrows its exception); aborts if it has not finished.
    T get() {
        if (!done()) detail::misuse("join_handle::get() before the task finished");
        return take();
    }

    /// Detaches: the task keeps running; its exception, if any, is reported.
    void reset() noexcept {
        if (state_) std::exchange(state_, nullptr)->release();
    }

    auto operator co_await() noexcept {
        struct awaiter {
            join_handle& self;
            bool await_ready() const noexcept {
                if (!self.state_) detail::misuse("co_await on an empty join_handle");
                return self.done();
            }
            bool await_suspend(std::coroutine_handle<> caller) noexcept {
                detail::join_state_base& s = *self.state_;
                s.joiner = detail::require_coroutine("co_await join_handle");
                s.joiner->resume_point = caller;
                int expected = detail::join_state_base::running;
                // Fails only if the task finished meanwhile: then do not suspend.
                return s.phase.compare_exchange_strong(expected, detail::join_state_base::joined,
                                                       std::memory_order_acq_rel);
            }
            T await_resume() { return self.take(); }
        };
        return awaiter{*this};
    }

private:
    template <class U>
    friend U run(context& ctx, task<U> body);

    T take() {
        state_->observed = true;
        if (state_->error) std::rethrow_exception(state_->error);
        if constexpr (!std::is_void_v<T>) return std::move(*state_->value);
    }

    detail::join_state<T>* state_ = nullptr;
};

/// Starts `body` as a detached root coroutine on `ctx`: it begins in a BH of that context (so
/// never inside this call), runs on its home thread (until it moves with co_schedule or
/// reschedule_self), and its result is delivered through the returned handle. Any thread may spawn
/// onto any context. Allocates the shared state and one one-shot BH. If `ctx` is destroyed before
/// the task finishes, the task is destroyed without completing and a joiner is not woken. `name`
/// must outlive the task (a string literal). `stop` is the task's own cancellation: a stop request
/// cancels whatever corio operation it is awaiting (and any later one) with ECANCELED, as if
/// the operation had been given the token itself (current_stop_token() returns it).
template <class T>
join_handle<T> spawn(context& ctx, task<T> body, const char* name = "task",
                     std::stop_token stop = {}) {
    if (!body.valid()) detail::misuse("spawn() of an empty task");
    auto* state = new detail::join_state<T>(name);
    detail::root_coroutine root = detail::run_root<T>(std::move(body), detail::state_ref<T>(state));
    root.handle.promise().co.stop = std::move(stop);
    ctx.post(detail::root_starter(ctx, root.handle), name);
    return join_handle<T>(state);
}

/// Runs `body` on `ctx` from its home thread, polling the context until the task finishes, and
/// returns its value (or rethrows its exception): the bridge from main() into coroutines.
template <class T>
T run(context& ctx, task<T> body) {
    join_handle<T> handle = spawn(ctx, std::move(body), "run");
    // The task may finish on another context (co_schedule, reschedule_self): that must wake
    // this loop to look at done() again. Set before the task can start (it starts in a BH).
    handle.state_->notify_on_done = &ctx;
    ctx.run_until([&] { return handle.done(); });
    return handle.get();
}

}  // namespace corio
