// accept_backoff.hpp — how an accept loop waits out a shortage of fds or memory.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace examples {

/// Out of fds (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM), accept fails and the connection
/// stays in the listen backlog: retrying at once would spin. The waits double from 1 ms up to
/// 100 ms, and start again from 1 ms once an accept succeeds. Not thread-safe (one per loop).
class accept_backoff {
public:
    /// Whether `err`, an accept error, is such a shortage. Other errors concern one client
    /// (e.g. ECONNABORTED: it gave up): the next accept is fine.
    static bool shortage(int err) noexcept {
        return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    }

    /// Whether no shortage is being waited out: a shortage now starts an episode.
    bool idle() const noexcept { return wait_.count() == 0; }

    /// After a shortage: how long to wait before the next accept.
    std::chrono::milliseconds next() noexcept {
        using std::chrono::milliseconds;
        wait_ = std::min(std::max(2 * wait_, milliseconds(1)), milliseconds(100));
        return wait_;
    }

    /// After an accept that succeeded: whether it ends an episode.
    bool recovered() noexcept {
        const bool ended = !idle();
        wait_ = {};
        return ended;
    }

private:
    std::chrono::milliseconds wait_{0};
};

}  // namespace examples
