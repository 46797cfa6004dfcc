// corio::signal_set — POSIX signals as something a coroutine awaits (through a signalfd).
//
// The usual shape of a server's shutdown:
//
//     int main() {
//         corio::signal_set signals{SIGINT, SIGTERM};  // first: before any thread starts
//         corio::context ctx;
//         ...
//         co_await signals.wait();  // in the coroutine that owns the shutdown
//
// A signal that a thread has not blocked is delivered to it the classic way (for SIGINT and
// SIGTERM: the process dies), so the signals must be blocked in *every* thread. The
// constructor blocks them in the calling thread, and threads inherit their creator's mask:
// construct the signal_set in main() before io_threads, thread-pool workers or any other
// thread exist. A process-directed signal (kill, Ctrl-C) then stays pending until a wait()
// reads it, on whichever context that runs; a thread-directed one (pthread_kill, tgkill) is
// seen only by a wait() running on the thread it was sent to.
#pragma once

#include <corio/result.hpp>
#include <corio/task.hpp>

#include <signal.h>
#include <initializer_list>
#include <stop_token>

namespace corio {

class signal_set {
public:
    /// Blocks `signals` in the calling thread and opens a non-blocking signalfd for them.
    /// Throws corio::error: EINVAL for an empty list, a number that is not a signal, or
    /// SIGKILL/SIGSTOP (which cannot be caught); the errno of a failed signalfd() otherwise.
    signal_set(std::initializer_list<int> signals);
    /// Closes the signalfd. The signals stay blocked in the threads that blocked them: one
    /// arriving while the program shuts down must not kill it halfway (unblock them with
    /// pthread_sigmask if the program goes on without a signal_set).
    ~signal_set();
    signal_set(const signal_set&) = delete;
    signal_set& operator=(const signal_set&) = delete;

    /// `co_await wait([stop])` → the number of the next of these signals (one per call; two
    /// deliveries of one standard signal while none is awaited coalesce into one, as POSIX
    /// says). A stop request — this token's or the awaiting task's — gives ECANCELED and
    /// consumes nothing. Works on every backend; the set must outlive the wait.
    task<result<int>> wait(std::stop_token stop = {});

    /// The signalfd, for code that wants to poll it itself.
    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

}  // namespace corio
