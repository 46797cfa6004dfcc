// corio::co_event — a manual-reset event for coroutines, built on wait_list.hpp.
#pragma once

#include <corio/wait_list.hpp>

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <stop_token>
#include <utility>

namespace corio {

/// A manual-reset event: set() wakes every waiter and leaves the event set, so later waits
/// return at once, until reset(). set/reset/is_set from any thread; waits from coroutines on
/// any context. No allocation.
class co_event {
public:
    explicit co_event(bool initially_set = false) noexcept : set_(initially_set) {}
    ~co_event();
    co_event(const co_event&) = delete;
    co_event& operator=(const co_event&) = delete;

    class [[nodiscard]] wait_op : detail::cancellable_wait {
    public:
        wait_op(co_event& e, std::stop_token stop) noexcept
            : cancellable_wait(std::move(stop)), event_(e) {}
        wait_op(const wait_op&) = delete;
        wait_op& operator=(const wait_op&) = delete;
        bool await_ready() noexcept {
            if (stopped_before_start()) return true;
            if (!event_.set_.load(std::memory_order_acquire)) return false;
            // set() stores the flag while holding the guard: take it once, so that the set()
            // that set it is done with the event before this waiter (which may destroy the
            // event as soon as the wait returns) goes on.
            detail::spin_guard g(event_.lock_);
            return true;
        }
        bool await_suspend(std::coroutine_handle<> h);
        result<void> await_resume() noexcept { return void_outcome(); }

    private:
        static void undo(void* self);
        co_event& event_;
    };

    /// `co_await e.wait([stop])`: returns once the event is set (at once if it is), or
    /// ECANCELED if `stop` is requested first (from any thread; at once if it already was).
    wait_op wait(std::stop_token stop = {}) noexcept { return wait_op(*this, std::move(stop)); }
    /// Sets the event and wakes every waiter (same-context waiters run after the calling
    /// coroutine suspends). Any thread.
    void set() noexcept;
    void reset() noexcept;
    bool is_set() const noexcept { return set_.load(std::memory_order_acquire); }

private:
    // Written under lock_; read without it by await_ready (acquire, pairs with set()'s release
    // store: a waiter that sees it set sees what the setter wrote before).
    std::atomic<bool> set_;
    detail::spinlock lock_;
    detail::wait_list waiters_;
};

}  // namespace corio
