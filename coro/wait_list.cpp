// The spinlock and wait lists the coroutine synchronization primitives share (see
// wait_list.hpp for the design: wait nodes in the awaiting frame, a tiny guard per primitive,
// hand-off before the wake, wakes after the guard).
#include <corio/wait_list.hpp>

#include <sched.h>

namespace corio::detail {

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

}  // namespace corio::detail
