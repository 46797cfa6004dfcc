// The notify_me / notified / eventfd protocol (QEMU's aio_notify, aio_notify_accept).
//
// Producer (any thread, after publishing work): notified = true; full barrier; if notify_me is
// non-zero, write the eventfd. It never skips the write because `notified` already looked true:
// that value may be a stale positive the consumer is about to clear.
// Consumer (home thread, poll()): before a wait that may block, notify_me += 2; full barrier;
// re-check `notified` and every work source; only then block. After the wait: notify_me -= 2,
// then notify_accept() clears `notified`, with a full fence, before any work source is looked
// at. The eventfd is drained only by the home thread and only when the backend reported it
// readable.
// The full barriers are the seq_cst store/load pairs on notify_me and notified and the fence
// after the clear (store→load ordering; acquire/release alone would allow the lost wake-up).
// tests/model/notify.pml model-checks the protocol, and the mistakes that would break it.
#include "runtime/detail/loop.hpp"

#include <unistd.h>
#include <cerrno>

namespace corio::detail {

void loop::notify() noexcept {
    notified.store(true, std::memory_order_seq_cst);
    if (notify_me.load(std::memory_order_seq_cst) != 0) kick();
}

void loop::kick() noexcept {
    // clock_gettime is async-signal-safe, as the BH path that kicks from a signal handler
    // requires. Relaxed: the eventfd write and the waiter's wake-up order it before the read.
    std::int64_t none = 0;
    kicked_at.compare_exchange_strong(none, now(clock_type::monotonic), std::memory_order_relaxed);
    const std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the fd is readable anyway.
    while (write(event_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

}  // namespace corio::detail
