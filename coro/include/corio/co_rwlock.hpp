// corio::co_rwlock — a coroutine readers-writer lock (QEMU's CoRwlock), built on wait_list.hpp.
#pragma once

#include <corio/wait_list.hpp>

#include <coroutine>

namespace corio {

/// A readers-writer lock with QEMU's CoRwlock semantics: many readers or one writer; waiters in
/// FIFO order of arrival, each granted the lock by the releaser before being woken. A queued
/// writer blocks new readers (no writer starvation); a writer's release admits all readers at
/// the head of the queue up to the next writer. Usable across contexts; no allocation.
/// Misuse that aborts: unlocking a lock not held, unlocking a write lock or downgrading from a
/// coroutine that is not the writer, upgrading without a read lock, destroying it while held
/// or waited on. Waits are not cancellable (as in QEMU); readers are not tracked, so a read
/// unlock from a coroutine that holds no read lock is caught only when no lock is held at all.
class co_rwlock {
public:
    co_rwlock() noexcept = default;
    ~co_rwlock();
    co_rwlock(const co_rwlock&) = delete;
    co_rwlock& operator=(const co_rwlock&) = delete;

    class [[nodiscard]] lock_op : detail::wait_node {
    public:
        enum class kind : unsigned char { read, write, upgrade };
        lock_op(co_rwlock& l, kind k) noexcept : lock_(l), kind_(k) {}
        lock_op(const lock_op&) = delete;
        lock_op& operator=(const lock_op&) = delete;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h) noexcept;
        void await_resume() const noexcept {}

    private:
        friend class co_rwlock;
        co_rwlock& lock_;
        kind kind_;
        bool writer_ticket() const noexcept { return kind_ != kind::read; }
    };

    /// `co_await l.read_lock()`: immediate if the lock is free, or held by readers with nobody
    /// queued; otherwise queued behind every earlier waiter.
    lock_op read_lock() noexcept { return lock_op(*this, lock_op::kind::read); }
    /// `co_await l.write_lock()`: immediate if the lock is free, otherwise queued.
    lock_op write_lock() noexcept { return lock_op(*this, lock_op::kind::write); }
    /// `co_await l.upgrade()` (holding a read lock): becomes the writer. Immediate if this is
    /// the only reader and nobody is queued; otherwise releases the read lock and queues as a
    /// writer at the tail, so others (writers included) may run first: not atomic, re-check
    /// what was read.
    lock_op upgrade() noexcept { return lock_op(*this, lock_op::kind::upgrade); }
    bool try_read_lock() noexcept;
    bool try_write_lock() noexcept;
    /// Writer → reader, never blocks; readers at the head of the queue are admitted with it.
    void downgrade() noexcept;
    /// Releases a read or the write lock and grants the lock to the head of the queue.
    void unlock() noexcept;

private:
    /// Grants the lock to the head of the queue while compatible. Under lock_.
    void grant_waiting(detail::wake_batch& batch) noexcept;

    detail::spinlock lock_;
    int owners_ = 0;                      // > 0: that many readers; -1: a writer
    detail::co_state* writer_ = nullptr;  // the writing coroutine while owners_ == -1
    detail::wait_list tickets_;
};

}  // namespace corio
