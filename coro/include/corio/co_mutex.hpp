// corio::co_mutex — a coroutine mutex (QEMU's CoMutex), built on wait_list.hpp.
#pragma once

#include <corio/wait_list.hpp>

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <stop_token>
#include <utility>

namespace corio {

/// A coroutine mutex with QEMU's CoMutex semantics. Usable from coroutines on any contexts at
/// once. unlock() passes ownership directly to the first waiter (FIFO), which is then woken on
/// its own context: while coroutines wait, nobody else can take the mutex. Waiting suspends the
/// coroutine, never the thread; before suspending, a locker briefly spins if the holder runs on
/// another thread and nobody is queued. No allocation.
///
/// Ownership belongs to the coroutine (the spawned chain of tasks), not to a thread: the holder
/// may move between contexts and unlocks from wherever it is. Unlocking from another coroutine
/// or outside a coroutine aborts; destroying a mutex that is locked or has waiters aborts.
class co_mutex {
public:
    co_mutex() noexcept = default;
    ~co_mutex();
    co_mutex(const co_mutex&) = delete;
    co_mutex& operator=(const co_mutex&) = delete;

    /// Releases the mutex when destroyed (from the coroutine that holds it). Move-only.
    class [[nodiscard]] lock_guard {
    public:
        lock_guard() noexcept = default;
        explicit lock_guard(co_mutex& m) noexcept : mutex_(&m) {}
        lock_guard(lock_guard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
        lock_guard& operator=(lock_guard&& other) noexcept {
            if (this != &other) {
                unlock();
                mutex_ = std::exchange(other.mutex_, nullptr);
            }
            return *this;
        }
        ~lock_guard() { unlock(); }
        bool owns_lock() const noexcept { return mutex_ != nullptr; }
        /// Unlocks now (no-op if already done).
        void unlock() noexcept {
            if (mutex_) std::exchange(mutex_, nullptr)->unlock();
        }

    private:
        co_mutex* mutex_ = nullptr;
    };

    class [[nodiscard]] lock_op : detail::cancellable_wait {
    public:
        lock_op(co_mutex& m, std::stop_token stop) noexcept
            : cancellable_wait(std::move(stop)), mutex_(m) {}
        lock_op(const lock_op&) = delete;
        lock_op& operator=(const lock_op&) = delete;
        bool await_ready() noexcept;
        bool await_suspend(std::coroutine_handle<> h) noexcept;
        /// ECANCELED if `stop` ended the wait: the mutex is then not held.
        result<void> await_resume() noexcept { return void_outcome(); }

    protected:
        friend class co_mutex;
        co_mutex& mutex_;
    };

    class [[nodiscard]] scoped_op : public lock_op {
    public:
        explicit scoped_op(co_mutex& m) noexcept : lock_op(m, {}) {}
        lock_guard await_resume() noexcept {
            (void)lock_op::await_resume();  // cannot fail: no stop token
            return lock_guard(mutex_);
        }
    };

    /// `co_await m.lock([stop])`: resumes once the running coroutine holds the mutex, or with
    /// ECANCELED (not holding it) if `stop` is requested first, from any thread; an already
    /// requested stop returns at once. Cancellation keeps the hand-off: a mutex handed to a
    /// waiter whose stop request came too late stays handed (the wait succeeds), and a
    /// cancelled waiter is skipped. Outside a coroutine: aborts.
    lock_op lock(std::stop_token stop = {}) noexcept { return lock_op(*this, std::move(stop)); }
    /// `auto guard = co_await m.scoped()`: lock(), then a guard that unlocks at scope exit.
    scoped_op scoped() noexcept { return scoped_op(*this); }
    /// Takes the mutex if it is free and nobody waits (never suspends). Coroutines only.
    bool try_lock() noexcept;
    /// Releases the mutex or hands it to the first waiter, which is woken: on this context,
    /// after the calling coroutine suspends; on another context, through co_schedule. Must be
    /// called by the holding coroutine (aborts otherwise). Never suspends.
    void unlock() noexcept;
    /// A snapshot, for assertions and statistics.
    bool is_locked() const noexcept { return state_.load(std::memory_order_relaxed) & locked_bit; }

private:
    friend class co_queue;

    // state_: locked_bit = held; waiters_bit = waiters_ is not empty; guard_bit = waiters_ (and
    // any change of the other bits) belongs to whoever set it. Uncontended lock and unlock
    // are single CASes from/to exactly 0 / locked_bit, so they fail whenever the guard is
    // held: the guard holder can store the whole word when it releases the guard.
    static constexpr std::uint32_t locked_bit = 1;
    static constexpr std::uint32_t waiters_bit = 2;
    static constexpr std::uint32_t guard_bit = 4;

    bool try_take() noexcept;
    bool lock_spinning(detail::co_state* self) noexcept;
    std::uint32_t acquire_guard() noexcept;
    /// Takes the mutex for n->co if free (true), else queues `n` (false). Any thread.
    bool lock_or_enqueue(detail::wait_node* n) noexcept;
    /// Unlocks without the holder check; returns the waiter that now holds it (to be woken).
    detail::wait_node* release() noexcept;
    void set_holder(detail::co_state* co) noexcept;
    static void undo_wait(void* node);

    std::atomic<std::uint32_t> state_{0};
    // Both relaxed: holder_ is written by whoever grants the mutex (before the holder can run)
    // and compared by the holder itself; holder_ctx_ only steers the spinning heuristic.
    std::atomic<detail::co_state*> holder_{nullptr};
    std::atomic<context*> holder_ctx_{nullptr};
    detail::wait_list waiters_;  // guarded by guard_bit
};

}  // namespace corio
