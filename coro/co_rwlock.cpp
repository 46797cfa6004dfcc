// corio::co_rwlock: FIFO grants of read and write locks by the releaser.
#include <corio/co_rwlock.hpp>
#include <corio/task.hpp>

namespace corio {

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

}  // namespace corio
