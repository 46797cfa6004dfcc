// Test helpers: a watchdog that turns a hang (a lost wake-up) into a failure with a message,
// a fresh context per test, and small RAII fd wrappers.
#pragma once

#include <corio/context.hpp>

#include <unistd.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

namespace corio::test {

/// Aborts the process with `what` if not destroyed within `limit`.
class watchdog {
public:
    explicit watchdog(std::string what, std::chrono::seconds limit = std::chrono::seconds(60))
        : what_(std::move(what)), thread_([this, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                  std::fprintf(stderr, "watchdog: '%s' did not finish in %llds (lost wake-up?)\n",
                               what_.c_str(), static_cast<long long>(limit.count()));
                  std::abort();
              }
          }) {}
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::string what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

/// A context on the backend under test (CORIO_BACKEND) plus a watchdog for the test body.
struct loop_fixture {
    watchdog guard{"test body"};
    context ctx{context_options{backend_kind::automatic, "test"}};
};

/// A pipe whose ends close on destruction; both ends O_NONBLOCK | O_CLOEXEC.
struct test_pipe {
    int rd = -1;
    int wr = -1;
    test_pipe();
    ~test_pipe() { close_both(); }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
    void put(char c = 'x') const;
    /// Reads everything available; returns the byte count.
    int drain() const;
    void close_read();
    void close_write();
    void close_both() {
        close_read();
        close_write();
    }
};

/// A connected AF_UNIX stream socket pair, both ends O_NONBLOCK | O_CLOEXEC; an end still open
/// (not set to -1 by the test) is closed on destruction.
struct test_socket_pair {
    int a = -1;
    int b = -1;
    test_socket_pair();
    ~test_socket_pair();
    test_socket_pair(const test_socket_pair&) = delete;
    test_socket_pair& operator=(const test_socket_pair&) = delete;
};

/// Runs `action` on a new thread while the code under test awaits something. The code under
/// test sets `armed` just before it starts the awaited operation; the thread then posts a BH to
/// `ctx` and runs `action` once that BH has run. The loop runs BHs only after the callback that
/// set `armed` has returned, so the operation is pending by then: no sleep orders the two.
class remote_action {
public:
    std::atomic<bool> armed{false};

    remote_action(context& ctx, std::function<void()> action);
    ~remote_action() { join(); }
    remote_action(const remote_action&) = delete;
    remote_action& operator=(const remote_action&) = delete;

    void join() {
        if (thread_.joinable()) thread_.join();
    }

private:
    std::atomic<bool> pending_{false};  // the BH posted after `armed` has run
    std::function<void()> action_;
    std::thread thread_;
};

/// Requests a stop from another thread while the code under test awaits (see remote_action:
/// the code sets `armed` just before it starts the operation to be cancelled).
class remote_stop {
public:
    explicit remote_stop(context& ctx) : action_(ctx, [this] { source_.request_stop(); }) {}

    std::stop_token token() const noexcept { return source_.get_token(); }
    void join() { action_.join(); }

private:
    std::stop_source source_;
    remote_action action_;

public:
    std::atomic<bool>& armed = action_.armed;
};

/// A gate that work on another thread (a pool worker) waits on until the test opens it. The
/// wait polls `open` with a short back-off: it ends when the gate opens, never after a time.
struct gate {
    std::atomic<bool> open{false};
    std::atomic<int> waiting{0};  // how many have arrived
    void wait() {
        waiting.fetch_add(1);
        while (!open.load()) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
};

/// A fresh std::stop_source, constructed out of line: GCC 12 with ASan inlines the constructor
/// (which passes `*this` to a helper) into some test bodies and then warns, wrongly, that the
/// source may be used uninitialized.
std::stop_source new_stop_source();

/// Runs `fn` in a forked child; returns its exit status (128 + signal if killed) and stderr.
std::pair<int, std::string> run_in_child(void (*fn)());

/// Runs `fn` in a forked child and returns what it wrote to stderr if it died of SIGABRT, or a
/// description of how it ended otherwise (so a CHECK on the message fails with context).
std::string abort_message_of(void (*fn)());

/// Runs `poll(true)` until `pred()` holds.
template <class Pred>
void poll_until(context& ctx, Pred&& pred) {
    while (!pred()) ctx.poll(true);
}

}  // namespace corio::test
