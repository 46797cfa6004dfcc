// connection_count.hpp — how a server knows that its last connection has closed.
#pragma once

#include <corio/sync.hpp>

#include <atomic>

namespace examples {

/// Open connections, plus one for the acceptor while it runs: whoever drops the last one sets
/// `all_closed`, which shutdown awaits. Any thread may add or drop (connections may end on
/// io_threads). Destroy it only once the threads that drop have joined: the last drop() may
/// still be inside set() when the waiter resumes.
struct connection_count {
    std::atomic<int> open{1};
    corio::co_event all_closed{};

    void add() noexcept { open.fetch_add(1, std::memory_order_relaxed); }
    /// acq_rel: the last one to drop sees every other connection's work done.
    void drop() {
        if (open.fetch_sub(1, std::memory_order_acq_rel) == 1) all_closed.set();
    }
};

}  // namespace examples
