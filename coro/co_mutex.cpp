// corio::co_mutex: the lock word, spinning before queueing, hand-off on unlock.
#include <corio/co_mutex.hpp>
#include <corio/task.hpp>

namespace corio {

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

}  // namespace corio
