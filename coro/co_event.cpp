// corio::co_event: set() grants every waiter; cancellable waits.
#include <corio/co_event.hpp>
#include <corio/task.hpp>

namespace corio::detail {

namespace {

// Grants every waiter of `list` whose wait was not cancelled (under the list's guard).
void take_all_waiting(wait_list& list, wake_batch& batch) noexcept {
    while (wait_node* n = list.take_first_waiting()) batch.add(n);
}

}  // namespace

}  // namespace corio::detail

namespace corio {

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

}  // namespace corio
