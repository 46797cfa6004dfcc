// fdmon::make_monitor — which backend a loop waits with: a forced one, or the first of
// io_uring → epoll → poll that this machine lets it set up (see select.cpp).
#pragma once

#include "fdmon/monitor.hpp"

#include <corio/backend.hpp>

#include <memory>
#include <string_view>

namespace corio::fdmon {

/// What a loop asks of the backend selection.
struct selection {
    /// A forced backend, or `automatic`: CORIO_BACKEND (io_uring|epoll|poll|auto) if set, else
    /// the first backend of io_uring → epoll → poll that can be set up.
    backend_kind requested = backend_kind::automatic;
    unsigned ring_entries = 256;  ///< io_uring: submission queue entries
    unsigned max_batch = 0;       ///< io_uring: submit once this many are queued (0: never early)
    std::string_view owner;       ///< the loop's name, for the fallback log line
};

/// Sets up the backend `s` selects. A forced backend that cannot be set up throws its
/// corio::error (ENOSYS for io_uring in a build without it); so does an unknown CORIO_BACKEND.
/// An automatic choice that had to fall back logs the reason to stderr, once per process.
std::unique_ptr<monitor> make_monitor(const selection& s);

}  // namespace corio::fdmon
