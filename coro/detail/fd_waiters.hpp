// The readiness waits of the coroutines of one thread (private, never installed): one fd handler
// per (context, fd), whose read callback wakes the coroutine waiting to read and whose write
// callback wakes the one waiting to write, so one coroutine can receive while another sends on
// the same socket. Home thread only, like the handlers themselves: no locks.
#pragma once

#include <corio/context.hpp>

namespace corio::detail {

/// Called on the home thread each time the fd is ready in the waiter's direction, until the
/// waiter is removed (level-triggered).
using fd_ready_fn = void (*)(void* waiter);

/// Registers `waiter` for readability (`write` false) or writability of `fd` on `ctx`. The first
/// waiter of a (context, fd) adds a `once` handler for its direction only; a waiter in the other
/// direction replaces it with one for both. Throws corio::error, nothing changed: EEXIST when a
/// coroutine already waits in that direction or the fd has a handler that is not a coroutine
/// wait, and add_fd_handler's other errors.
void add_fd_waiter(context& ctx, int fd, bool write, fd_ready_fn ready, void* waiter);

/// Unregisters the waiter in that direction (none: nothing). The handler is left with the other
/// direction, or removed when none remains. Safe from inside the waiter's own callback.
void remove_fd_waiter(context& ctx, int fd, bool write) noexcept;

}  // namespace corio::detail
