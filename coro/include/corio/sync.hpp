// Coroutine synchronization across contexts: co_mutex (QEMU's CoMutex), co_queue (CoQueue),
// co_rwlock (CoRwlock), co_event and co_semaphore. corio::channel<T> (channel.hpp) is built on
// the same parts.
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
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <stop_token>
#include <utility>

namespace corio {

namespace detail {

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

/// A counting semaphore. release() hands permits directly to waiters in FIFO order, so a
/// try_acquire() never takes a permit a waiter is entitled to. Any thread may release; waits
/// from coroutines on any context. No allocation. A negative initial count or release count
/// aborts, as does destroying it with coroutines waiting.
class co_semaphore {
public:
    explicit co_semaphore(std::ptrdiff_t initial);
    ~co_semaphore();
    co_semaphore(const co_semaphore&) = delete;
    co_semaphore& operator=(const co_semaphore&) = delete;

    class [[nodiscard]] acquire_op : detail::cancellable_wait {
    public:
        acquire_op(co_semaphore& s, std::stop_token stop) noexcept
            : cancellable_wait(std::move(stop)), sem_(s) {}
        acquire_op(const acquire_op&) = delete;
        acquire_op& operator=(const acquire_op&) = delete;
        bool await_ready() noexcept { return stopped_before_start() || sem_.try_acquire(); }
        bool await_suspend(std::coroutine_handle<> h);
        result<void> await_resume() noexcept { return void_outcome(); }

    private:
        static void undo(void* self);
        co_semaphore& sem_;
    };

    /// `co_await s.acquire([stop])`: takes one permit, waiting for it in FIFO order; ECANCELED
    /// (no permit taken) if `stop` is requested first.
    acquire_op acquire(std::stop_token stop = {}) noexcept {
        return acquire_op(*this, std::move(stop));
    }
    /// Takes a permit if one is available now.
    bool try_acquire() noexcept;
    /// Adds `n` permits, first to the waiters (which are woken), the rest to the count.
    void release(std::ptrdiff_t n = 1) noexcept;
    /// Permits available now (a snapshot).
    std::ptrdiff_t available() const noexcept;

private:
    mutable detail::spinlock lock_;
    std::ptrdiff_t count_;
    detail::wait_list waiters_;
};

}  // namespace corio
