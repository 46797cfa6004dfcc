// The parts corio's coroutine synchronization primitives (sync.hpp, channel.hpp) are built on:
// wait nodes, their intrusive lists, the internal spinlock and the cancellable wait.
//
// A waiting coroutine is recorded in a wait node that lives in its awaiter, i.e. in the awaiting
// frame: no allocation per wait. Every primitive keeps its waiters in an intrusive FIFO guarded
// by a tiny internal spinlock (co_mutex: a guard bit in its state word, so that an uncontended
// lock and unlock are one CAS each). Why a spinlock and not a lock-free list: a woken waiter is
// handed what it waited for (the mutex, a permit, a value) by the waker, and with cancellation
// a waiter may also leave the list from the middle; doing that lock-free needs the handoff-token
// protocol QEMU's CoMutex uses, for a gain nobody could measure on critical sections that are a
// few pointer writes long. The guard is never held across a wake, a suspension or user code
// (channel<T> moves a T under it and requires T's move to be noexcept), so it is held for tens
// of nanoseconds; contenders spin with a pause, then yield the CPU so that a preempted holder
// can run (the machine may have fewer cores than contexts).
//
// Hand-off: whoever releases a resource that a coroutine waits for grants it to that coroutine
// (under the guard) before waking it, so a newcomer can never take it first (no barging), and
// waiters are served in FIFO order. The wake itself (co_wake) happens after the guard is
// released: on the waiter's own context from inside a coroutine it runs after the waker
// suspends; on another context it is scheduled there.
//
// Cancellation (std::stop_token on event, semaphore, channel and co_mutex waits): a grant and a
// stop request race through one CAS in the node's detail::cancel_point. The granter skips a node
// whose stop request won, leaving it in the list; the stop request's work item, on the waiter's
// home thread, unlinks it and resumes the waiter with ECANCELED. So a node leaves a list either
// granted or through its own cancellation, and a primitive still lists every coroutine that has
// not returned from its wait (destroying it then aborts).
#pragma once

#include <corio/cancel.hpp>
#include <corio/context.hpp>
#include <corio/result.hpp>
#include <corio/schedule.hpp>

#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <stop_token>
#include <utility>

namespace corio {

namespace detail {

/// The CPU's spin-wait hint (x86 PAUSE, arm64 YIELD; nothing elsewhere).
inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// One step of a busy wait: a CPU pause, or after a while a sched_yield() so that a preempted
/// holder gets the CPU back.
void cpu_relax(unsigned& spins) noexcept;

/// The internal lock of the primitives: test-and-test-and-set. Held only for a few pointer
/// operations, never across a wake or a suspension.
class spinlock {
public:
    void lock() noexcept {
        // acquire: pairs with unlock()'s release; everything the previous holder wrote is seen.
        if (!locked_.exchange(true, std::memory_order_acquire)) return;
        lock_contended();
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    void lock_contended() noexcept;
    std::atomic<bool> locked_{false};
};

class spin_guard {
public:
    explicit spin_guard(spinlock& l) noexcept : lock_(l) { lock_.lock(); }
    ~spin_guard() { lock_.unlock(); }
    spin_guard(const spin_guard&) = delete;
    spin_guard& operator=(const spin_guard&) = delete;

private:
    spinlock& lock_;
};

/// A waiting coroutine, embedded in its awaiter. The links belong to the list's guard; `co` is
/// written before the node is published and not changed while it is listed.
struct wait_node {
    wait_node* prev = nullptr;
    wait_node* next = nullptr;  // also chains a wake_batch once the node is unlinked
    co_state* co = nullptr;
    cancel_point cancel;  // grant vs stop request; unused (never armed) for waits without a token
};

/// Intrusive FIFO of wait nodes (no ownership). Callers hold the primitive's guard.
class wait_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    wait_node* front() const noexcept { return head_; }
    void push_back(wait_node* n) noexcept;
    void remove(wait_node* n) noexcept;
    /// Unlinks and returns the first node whose wait was not cancelled (its cancel_point is
    /// completed: from now on a stop request no longer affects it), or null. Cancelled nodes
    /// stay listed: their own cancellation unlinks them.
    wait_node* take_first_waiting() noexcept;

private:
    wait_node* head_ = nullptr;
    wait_node* tail_ = nullptr;
};

/// Nodes taken from a list under its guard, woken in order after the guard is released.
class wake_batch {
public:
    void add(wait_node* n) noexcept {
        n->next = nullptr;
        (tail_ ? tail_->next : head_) = n;
        tail_ = n;
    }
    /// co_wakes every node, in order; touches none of them after its wake. Returns the count.
    std::size_t wake_all() noexcept;

private:
    wait_node* head_ = nullptr;
    wait_node* tail_ = nullptr;
};

/// The part every cancellable awaiter shares: the stop token until armed, the outcome.
struct cancellable_wait : wait_node {
    explicit cancellable_wait(std::stop_token s) noexcept : stop(std::move(s)) {}

    /// await_ready's first step: an already requested stop ends the wait at once, untouched.
    bool stopped_before_start() noexcept {
        if (!stop.stop_requested()) return false;
        error = ECANCELED;
        return true;
    }
    /// Binds the node to the running coroutine (before it is published). `what` names the
    /// operation in the abort message outside a coroutine.
    void bind(std::coroutine_handle<> h, const char* what) noexcept {
        co = require_coroutine(what);
        co->resume_point = h;
    }
    /// After the node is listed (guard released): lets a stop request cancel the wait; `undo`
    /// (home thread) must unlink the node. A granter may already have completed the wait.
    void arm(void (*undo)(void* self)) {
        cancel.arm(std::move(stop), *co->ctx.load(std::memory_order_relaxed), co,
                   static_cast<cancellable_wait*>(this), undo);
    }
    /// After resumption: 0, or the errno the wait ended with (ECANCELED, EPIPE, ...).
    int outcome() noexcept { return cancel.finish() ? ECANCELED : error; }
    /// outcome() as the result of a wait that yields no value.
    result<void> void_outcome() noexcept {
        if (const int e = outcome()) return result<void>::from_errno(e);
        return {};
    }

    std::stop_token stop;
    int error = 0;  // written by the granter before the wake, or before suspending
};

}  // namespace detail

}  // namespace corio
