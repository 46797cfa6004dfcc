// corio::co_semaphore — a counting semaphore for coroutines, built on wait_list.hpp.
#pragma once

#include <corio/wait_list.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <stop_token>
#include <utility>

namespace corio {

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
