// corio::io_thread — a thread that owns and runs its own context (QEMU's IOThread).
#pragma once

#include <corio/context.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace corio {

/// Starts a thread, named `name` in /proc (the first 15 characters), that constructs a context
/// (so that thread is its home thread) and runs it until stop() is requested; then it drains —
/// runs iterations while they make progress, without blocking — and destroys the context on
/// that thread. The constructor returns once the context exists (it throws the context's
/// corio::error if it could not be set up).
///
/// Other threads reach the context through get_context(): schedule BHs, post, notify, spawn
/// coroutines onto it, co_schedule / reschedule_self / co_wake across threads. Valid until
/// join() returns. Whatever still refers to the context when it is destroyed follows the
/// context's rules (bottom halves must be gone; suspended coroutines are abandoned).
class io_thread {
public:
    explicit io_thread(std::string name = "io_thread", context_options options = {});
    /// stop(), then join().
    ~io_thread();
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;

    context& get_context() noexcept { return *ctx_; }
    const std::string& name() const noexcept { return name_; }
    /// Asks the loop to stop after its current iteration and drain. Any thread, idempotent,
    /// async-signal-safe; once the loop has ended (for whatever reason) it does nothing.
    void stop() noexcept;
    /// Waits until the thread has drained, destroyed its context and exited. Idempotent; not
    /// from the io_thread itself.
    void join();
    std::thread::id thread_id() const noexcept { return id_; }

private:
    std::string name_;
    context* ctx_ = nullptr;
    std::atomic<bool> alive_{true};  // the context may be stopped (cleared before it is destroyed)
    std::atomic<int> stoppers_{0};   // stop() calls using the context right now
    std::thread::id id_;
    std::thread thread_;
};

}  // namespace corio
