// corio::co_semaphore: permits handed to waiters in FIFO order; cancellable waits.
#include <corio/co_semaphore.hpp>
#include <corio/task.hpp>

namespace corio {

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
