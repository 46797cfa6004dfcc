// Coroutine synchronization primitives (see sync.hpp for the design: wait nodes in the awaiting
// frame, a tiny guard per primitive, hand-off before the wake, wakes after the guard).
#include <corio/sync.hpp>
#include <corio/task.hpp>

#include <sched.h>

namespace corio::detail {

namespace {

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

void cpu_relax(unsigned& spins) noexcept {
    // A guard is held for a few pointer writes; if it stays busy longer, its holder was most
    // likely preempted, and spinning on would only keep it off the CPU.
    if (spins < 100) {
        ++spins;
        cpu_pause();
    } else {
        sched_yield();
    }
}

void spinlock::lock_contended() noexcept {
    unsigned spins = 0;
    for (;;) {
        while (locked_.load(std::memory_order_relaxed)) cpu_relax(spins);
        if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
}

void wait_list::push_back(wait_node* n) noexcept {
    n->next = nullptr;
    n->prev = tail_;
    (tail_ ? tail_->next : head_) = n;
    tail_ = n;
}

void wait_list::remove(wait_node* n) noexcept {
    (n->prev ? n->prev->next : head_) = n->next;
    (n->next ? n->next->prev : tail_) = n->prev;
    n->prev = n->next = nullptr;
}

wait_node* wait_list::take_first_waiting() noexcept {
    for (wait_node* n = head_; n; n = n->next) {
        // Decides the race with a stop request: from here on the node is ours to grant.
        if (n->cancel.complete()) {
            remove(n);
            return n;
        }
    }
    return nullptr;
}

std::size_t wake_batch::wake_all() noexcept {
    std::size_t count = 0;
    for (wait_node* n = head_; n; ++count) {
        wait_node* const next = n->next;  // n may be gone once woken
        co_wake(coroutine(n->co));
        n = next;
    }
    head_ = tail_ = nullptr;
    return count;
}

namespace {

// Grants every waiter of `list` whose wait was not cancelled (under the list's guard).
void take_all_waiting(wait_list& list, wake_batch& batch) noexcept {
    while (wait_node* n = list.take_first_waiting()) batch.add(n);
}

}  // namespace

}  // namespace corio::detail

namespace corio {

// ---- co_mutex ---------------------------------------------------------------------------------

co_mutex::~co_mutex() {
    if (state_.load(std::memory_order_acquire) != 0) {
        detail::misuse("co_mutex destroyed while locked or while a coroutine waits on it");
    }
}

bool co_mutex::try_take() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
        if (s & locked_bit) return false;
        if (s & guard_bit) {  // a cancelled waiter is being unlinked: wait, do not fail
            detail::cpu_relax(spins);
            s = state_.load(std::memory_order_relaxed);
            continue;
        }
        // Free, and any listed waiters are cancelled ones (a live waiter implies locked_bit:
        // unlock hands over instead of clearing it). acquire pairs with every release store.
        if (state_.compare_exchange_weak(s, s | locked_bit, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
            return true;
        }
    }
}

bool co_mutex::lock_spinning(detail::co_state* self) noexcept {
    // QEMU spins up to 1000 rounds; a few hundred pauses (a few microseconds) cover a short
    // critical section on another core without burning a time slice.
    constexpr int spin_limit = 256;
    if (try_take()) {
        set_holder(self);
        return true;
    }
    if (holder_.load(std::memory_order_relaxed) == self) {
        detail::misuse("co_mutex::lock() by the coroutine that already holds it (deadlock)");
    }
    context* const here = self->ctx.load(std::memory_order_relaxed);
    for (int i = 0; i < spin_limit; ++i) {
        const std::uint32_t s = state_.load(std::memory_order_relaxed);
        if (!(s & locked_bit)) {
            if (try_take()) {
                set_holder(self);
                return true;
            }
            continue;
        }
        if (s & waiters_bit) return false;  // others queued first: queue behind them
        // A holder on this thread cannot release the mutex while we spin.
        if (holder_ctx_.load(std::memory_order_relaxed) == here) return false;
        detail::cpu_pause();
    }
    return false;
}

std::uint32_t co_mutex::acquire_guard() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    unsigned spins = 0;
    for (;;) {
        if (s & guard_bit) {
            detail::cpu_relax(spins);
            s = state_.load(std::memory_order_relaxed);
            continue;
        }
        // acquire: pairs with the release store that ended the previous guard section (and
        // with an unlock's release CAS), so waiters_ and the holder fields are seen current.
        if (state_.compare_exchange_weak(s, s | guard_bit, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
            return s;  // the word as it stays until we store it back
        }
    }
}

void co_mutex::set_holder(detail::co_state* co) noexcept {
    holder_.store(co, std::memory_order_relaxed);
    holder_ctx_.store(co->ctx.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

bool co_mutex::lock_or_enqueue(detail::wait_node* n) noexcept {
    const std::uint32_t s = acquire_guard();
    if (!(s & locked_bit)) {
        set_holder(n->co);
        state_.store(s | locked_bit, std::memory_order_release);  // also releases the guard
        return true;
    }
    waiters_.push_back(n);
    // release: publishes the node; the unlocker that takes it acquires the guard.
    state_.store(s | waiters_bit, std::memory_order_release);
    return false;
}

detail::wait_node* co_mutex::release() noexcept {
    holder_.store(nullptr, std::memory_order_relaxed);
    holder_ctx_.store(nullptr, std::memory_order_relaxed);
    std::uint32_t expected = locked_bit;
    // release: the critical section happens-before the next holder's acquire.
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        return nullptr;
    }
    acquire_guard();
    detail::wait_node* next = waiters_.take_first_waiting();
    // Hand-off: locked_bit stays set for the next holder, so nobody can barge in between.
    if (next) set_holder(next->co);
    state_.store((next ? locked_bit : 0) | (waiters_.empty() ? 0 : waiters_bit),
                 std::memory_order_release);
    return next;
}

void co_mutex::unlock() noexcept {
    detail::co_state* const self = detail::current_coroutine();
    if (!self || holder_.load(std::memory_order_relaxed) != self) {
        detail::misuse("co_mutex::unlock() by a coroutine that does not hold the mutex");
    }
    if (detail::wait_node* next = release()) co_wake(coroutine(next->co));
}

bool co_mutex::try_lock() noexcept {
    detail::co_state* const self = detail::require_coroutine("co_mutex::try_lock");
    if (!try_take()) return false;
    set_holder(self);
    return true;
}

void co_mutex::undo_wait(void* node) {
    auto* op = static_cast<lock_op*>(static_cast<detail::cancellable_wait*>(node));
    co_mutex& m = op->mutex_;
    const std::uint32_t s = m.acquire_guard();
    m.waiters_.remove(op);
    m.state_.store((s & locked_bit) | (m.waiters_.empty() ? 0 : waiters_bit),
                   std::memory_order_release);
}

bool co_mutex::lock_op::await_ready() noexcept {
    if (stopped_before_start()) return true;
    co = detail::require_coroutine("co_mutex::lock");
    return mutex_.lock_spinning(co);
}

bool co_mutex::lock_op::await_suspend(std::coroutine_handle<> h) noexcept {
    co->resume_point = h;
    if (mutex_.lock_or_enqueue(this)) return false;
    arm(&co_mutex::undo_wait);
    return true;
}

// ---- co_queue ---------------------------------------------------------------------------------

co_queue::~co_queue() {
    if (!waiters_.empty()) detail::misuse("co_queue destroyed while coroutines wait on it");
}

void co_queue::push(node* n) noexcept {
    detail::spin_guard g(lock_);
    waiters_.push_back(n);
}

bool co_queue::empty() const noexcept {
    detail::spin_guard g(lock_);
    return waiters_.empty();
}

bool co_queue::mutex_wait_op::await_suspend(std::coroutine_handle<> h) noexcept {
    co = detail::require_coroutine("co_queue::wait");
    co_mutex& m = *relock;
    if (m.holder_.load(std::memory_order_relaxed) != co) {
        detail::misuse("co_queue::wait() by a coroutine that does not hold the mutex");
    }
    co->resume_point = h;
    // Queued before the mutex is released: a condition change made under the mutex after this
    // point finds us (no lost wake-up).
    queue_.push(this);
    detail::wait_node* next = m.release();
    // A notifier on another thread may already have queued us on the mutex, which release()
    // then handed to us: we hold it again and continue without suspending.
    if (next == this) return false;
    if (next) co_wake(coroutine(next->co));
    return true;
}

void co_queue::resume(node* n) noexcept {
    detail::co_state* const co = n->co;
    // Queued on the mutex instead: the unlock that hands it over wakes the coroutine.
    if (co_mutex* m = n->relock; m && !m->lock_or_enqueue(n)) return;
    co_wake(coroutine(co));
}

bool co_queue::notify_one() noexcept {
    node* n;
    {
        detail::spin_guard g(lock_);
        n = static_cast<node*>(waiters_.front());
        if (n) waiters_.remove(n);
    }
    if (!n) return false;
    resume(n);
    return true;
}

std::size_t co_queue::notify_all() noexcept {
    detail::wait_node* chain = nullptr;
    {
        detail::spin_guard g(lock_);
        chain = waiters_.front();
        waiters_ = detail::wait_list();  // the nodes keep their links: a private FIFO chain now
    }
    std::size_t count = 0;
    for (detail::wait_node* n = chain; n; ++count) {
        detail::wait_node* const next = n->next;  // resume() relinks or wakes n
        resume(static_cast<node*>(n));
        n = next;
    }
    return count;
}

// ---- co_rwlock --------------------------------------------------------------------------------

co_rwlock::~co_rwlock() {
    if (owners_ != 0 || !tickets_.empty()) {
        detail::misuse("co_rwlock destroyed while held or while a coroutine waits on it");
    }
}

void co_rwlock::grant_waiting(detail::wake_batch& batch) noexcept {
    // Ownership is granted here, before the wake, so nothing can slip in between.
    while (detail::wait_node* n = tickets_.front()) {
        auto* t = static_cast<lock_op*>(n);
        if (t->writer_ticket()) {
            if (owners_ != 0) return;
            tickets_.remove(t);
            owners_ = -1;
            writer_ = t->co;
            batch.add(t);
            return;
        }
        if (owners_ < 0) return;
        tickets_.remove(t);  // readers at the head go in together, up to the next writer
        ++owners_;
        batch.add(t);
    }
}

bool co_rwlock::lock_op::await_suspend(std::coroutine_handle<> h) noexcept {
    static constexpr const char* names[] = {"co_rwlock::read_lock", "co_rwlock::write_lock",
                                            "co_rwlock::upgrade"};
    co = detail::require_coroutine(names[static_cast<int>(kind_)]);
    co->resume_point = h;
    co_rwlock& l = lock_;
    detail::wake_batch batch;
    {
        detail::spin_guard g(l.lock_);
        switch (kind_) {
            case kind::read:
                // A queued ticket (a writer, or readers behind one) blocks new readers.
                if (l.owners_ >= 0 && l.tickets_.empty()) {
                    ++l.owners_;
                    return false;
                }
                break;
            case kind::write:
                if (l.owners_ == 0 && l.tickets_.empty()) {
                    l.owners_ = -1;
                    l.writer_ = co;
                    return false;
                }
                break;
            case kind::upgrade:
                if (l.owners_ <= 0) {
                    detail::misuse("co_rwlock::upgrade() without holding a read lock");
                }
                if (l.owners_ == 1 && l.tickets_.empty()) {
                    l.owners_ = -1;
                    l.writer_ = co;
                    return false;
                }
                --l.owners_;  // give up the read lock, then wait at the tail as a writer
                break;
        }
        l.tickets_.push_back(this);
        // Only an upgrade changes owners_ here. It cannot grant its own ticket: with owners_
        // back at 0 the queue was not empty, so an earlier writer is at the head.
        if (kind_ == kind::upgrade) l.grant_waiting(batch);
    }
    batch.wake_all();
    return true;
}

bool co_rwlock::try_read_lock() noexcept {
    detail::spin_guard g(lock_);
    if (owners_ < 0 || !tickets_.empty()) return false;
    ++owners_;
    return true;
}

bool co_rwlock::try_write_lock() noexcept {
    detail::co_state* const self = detail::require_coroutine("co_rwlock::try_write_lock");
    detail::spin_guard g(lock_);
    if (owners_ != 0) return false;
    owners_ = -1;
    writer_ = self;
    return true;
}

void co_rwlock::downgrade() noexcept {
    detail::wake_batch batch;
    {
        detail::spin_guard g(lock_);
        if (owners_ != -1 || writer_ != detail::current_coroutine()) {
            detail::misuse(
                "co_rwlock::downgrade() by a coroutine that does not hold the write lock");
        }
        owners_ = 1;
        writer_ = nullptr;
        grant_waiting(batch);
    }
    batch.wake_all();
}

void co_rwlock::unlock() noexcept {
    detail::wake_batch batch;
    {
        detail::spin_guard g(lock_);
        if (owners_ == 0) detail::misuse("co_rwlock::unlock() of a lock that is not held");
        if (owners_ < 0) {
            if (writer_ != detail::current_coroutine()) {
                detail::misuse("co_rwlock::unlock() of the write lock by another coroutine");
            }
            owners_ = 0;
            writer_ = nullptr;
        } else {
            --owners_;
        }
        grant_waiting(batch);
    }
    batch.wake_all();
}

// ---- co_event ---------------------------------------------------------------------------------

co_event::~co_event() {
    if (!waiters_.empty()) detail::misuse("co_event destroyed while coroutines wait on it");
}

bool co_event::wait_op::await_suspend(std::coroutine_handle<> h) {
    bind(h, "co_event::wait");
    {
        detail::spin_guard g(event_.lock_);
        if (event_.set_.load(std::memory_order_relaxed)) return false;
        event_.waiters_.push_back(this);
    }
    arm(&undo);
    return true;
}

void co_event::wait_op::undo(void* self) {
    auto* op = static_cast<wait_op*>(static_cast<detail::cancellable_wait*>(self));
    detail::spin_guard g(op->event_.lock_);
    op->event_.waiters_.remove(op);
}

void co_event::set() noexcept {
    detail::wake_batch batch;
    {
        detail::spin_guard g(lock_);
        set_.store(true, std::memory_order_release);
        detail::take_all_waiting(waiters_, batch);
    }
    batch.wake_all();
}

void co_event::reset() noexcept {
    detail::spin_guard g(lock_);
    set_.store(false, std::memory_order_relaxed);
}

// ---- co_semaphore -----------------------------------------------------------------------------

co_semaphore::co_semaphore(std::ptrdiff_t initial) : count_(initial) {
    if (initial < 0) detail::misuse("co_semaphore with a negative initial count");
}

co_semaphore::~co_semaphore() {
    if (!waiters_.empty()) detail::misuse("co_semaphore destroyed while coroutines wait on it");
}

bool co_semaphore::try_acquire() noexcept {
    detail::spin_guard g(lock_);
    if (count_ == 0) return false;
    --count_;
    return true;
}

std::ptrdiff_t co_semaphore::available() const noexcept {
    detail::spin_guard g(lock_);
    return count_;
}

bool co_semaphore::acquire_op::await_suspend(std::coroutine_handle<> h) {
    bind(h, "co_semaphore::acquire");
    {
        detail::spin_guard g(sem_.lock_);
        if (sem_.count_ > 0) {  // released since await_ready looked
            --sem_.count_;
            return false;
        }
        sem_.waiters_.push_back(this);
    }
    arm(&undo);
    return true;
}

void co_semaphore::acquire_op::undo(void* self) {
    auto* op = static_cast<acquire_op*>(static_cast<detail::cancellable_wait*>(self));
    detail::spin_guard g(op->sem_.lock_);
    op->sem_.waiters_.remove(op);
}

void co_semaphore::release(std::ptrdiff_t n) noexcept {
    if (n < 0) detail::misuse("co_semaphore::release() of a negative count");
    detail::wake_batch batch;
    {
        detail::spin_guard g(lock_);
        for (; n > 0; --n) {
            detail::wait_node* w = waiters_.take_first_waiting();
            if (!w) break;
            batch.add(w);  // the permit is the wake itself
        }
        count_ += n;
    }
    batch.wake_all();
}

}  // namespace corio
