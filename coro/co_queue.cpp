// corio::co_queue: waits that release the caller's lock after queueing; wait morphing onto a
// co_mutex.
#include <corio/co_queue.hpp>
#include <corio/task.hpp>

namespace corio {

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

}  // namespace corio
