// corio::co_queue — coroutines waiting for a condition (QEMU's CoQueue), built on wait_list.hpp.
#pragma once

#include <corio/co_mutex.hpp>
#include <corio/wait_list.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>

namespace corio {

/// A FIFO of coroutines waiting for a condition (QEMU's CoQueue), like a condition variable.
/// The condition itself must be protected by an external lock that every waiter holds when it
/// calls wait() and that whoever changes the condition holds while changing it: wait() queues
/// the coroutine *before* releasing that lock, so a change made under the lock always finds
/// it queued. notify_one/notify_all may be called with or without the lock, from a coroutine or
/// from any thread. The queue itself is thread-safe (internal spinlock); destroying it with
/// coroutines waiting aborts. No allocation.
///
/// With a co_mutex, a notified waiter does not wake up only to queue on the mutex: the notifier
/// takes the mutex for it if free, or queues it on the mutex, whose unlock then hands it over
/// (wait morphing: no thundering herd on notify_all).
/// Waits take no stop_token: a cancelled waiter would have to re-take the lock before it could
/// return, so cancellation could not return promptly; wake it with notify_all and let it check
/// its own stop condition instead.
class co_queue {
public:
    co_queue() noexcept = default;
    ~co_queue();
    co_queue(const co_queue&) = delete;
    co_queue& operator=(const co_queue&) = delete;

    struct node : detail::wait_node {
        co_mutex* relock = nullptr;  // the mutex to hand over before the wake, if any
    };

    class [[nodiscard]] mutex_wait_op : node {
    public:
        mutex_wait_op(co_queue& q, co_mutex& m) noexcept : queue_(q) { relock = &m; }
        mutex_wait_op(const mutex_wait_op&) = delete;
        mutex_wait_op& operator=(const mutex_wait_op&) = delete;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) noexcept;
        void await_resume() const noexcept {}

    private:
        co_queue& queue_;
    };

    template <class Lock>
    class [[nodiscard]] basic_wait_op : node {
    public:
        basic_wait_op(co_queue& q, Lock& lock) noexcept : queue_(q), lock_(lock) {}
        basic_wait_op(const basic_wait_op&) = delete;
        basic_wait_op& operator=(const basic_wait_op&) = delete;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            co = detail::require_coroutine("co_queue::wait");
            co->resume_point = h;
            queue_.push(this);
            lock_.unlock();  // a notifier on another thread may wake us from here on
        }
        void await_resume() { lock_.lock(); }

    private:
        co_queue& queue_;
        Lock& lock_;
    };

    /// `co_await q.wait(m)`: queues the running coroutine (which must hold `m`), unlocks `m`,
    /// suspends until notified, and resumes holding `m` again. Wakes may be spurious in the
    /// sense that the condition can have changed again by then: re-check it in a loop.
    mutex_wait_op wait(co_mutex& m) noexcept { return mutex_wait_op(*this, m); }
    /// The same with any lock having lock()/unlock() that block the thread (std::mutex, ...):
    /// relocking after the wake blocks the thread. Hold such a lock only briefly.
    template <class Lock>
    requires(!std::same_as<Lock, co_mutex>) && requires(Lock& l) {
        l.lock();
        l.unlock();
    }
    basic_wait_op<Lock> wait(Lock& lock) noexcept { return basic_wait_op<Lock>(*this, lock); }

    /// Wakes the first waiter (QEMU's qemu_co_queue_next); false if there was none. From a
    /// coroutine, a waiter on the same context runs after the caller suspends. Outside any
    /// coroutine on the waiter's context it may run before this returns: do not hold a thread
    /// lock the waiter will take.
    bool notify_one() noexcept;
    /// Wakes every waiter, in FIFO order (qemu_co_queue_restart_all); returns how many.
    std::size_t notify_all() noexcept;
    /// Whether no coroutine is queued (a snapshot).
    bool empty() const noexcept;

private:
    void push(node* n) noexcept;
    /// Hands `n` its mutex (if any) and wakes it, or leaves it queued on the mutex.
    static void resume(node* n) noexcept;

    mutable detail::spinlock lock_;
    detail::wait_list waiters_;
};

}  // namespace corio
