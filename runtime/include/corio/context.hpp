// corio::context — the event loop (QEMU's AioContext).
//
// One context is run by one thread at a time, its home thread: the thread that constructed it.
// The loop multiplexes bottom halves, fd handlers, timers and (with io_uring) arbitrary
// submissions over one fdmon backend. Cross-thread entry points are exactly: scheduling a
// bottom half, `post`, `notify`, `stop`, `advance_manual_clock` and reading `stats`.
//
// Lifetime: RAII. The context owns its backend, its notifier eventfd and its timer lists; it is
// neither copyable nor movable (handles point into it). Everything that refers to it (bottom
// half handles, timers, fd handlers) must be released before it is destroyed, on its home
// thread; a bottom half still alive at that point is a lifecycle bug and aborts with its name.
// One-shot posts that never ran are destroyed without being called.
#pragma once

#include <corio/backend.hpp>
#include <corio/bottom_half.hpp>
#include <corio/callback.hpp>
#include <corio/cqe_handler.hpp>
#include <corio/event_notifier.hpp>
#include <corio/thread_pool.hpp>
#include <corio/timer.hpp>
#include <corio/work_item.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace corio {

namespace detail {
class loop;
}

/// Adaptive busy polling (QEMU's aio_context_set_poll_params). Before blocking, the loop calls
/// the `poll` probes of its fd handlers (and checks its own notifier) for up to `poll_ns`;
/// `poll_ns` starts at 0 and adapts within [0, max_ns] to how long the loop really blocked:
///  - blocked no longer than `poll_ns`: unchanged (polling would have found the event);
///  - blocked longer than `max_ns`: divided by `shrink` (0: reset to 0);
///  - otherwise, while below `max_ns`: multiplied by `grow` (0: 2), from 4000 ns when 0.
/// A wait ended by a notification (a cross-thread BH, co_schedule, notify) counts as blocked
/// until the notification was *sent*, not until the thread was back on a CPU (QEMU counts the
/// latter): a wake-up slower than `max_ns` — tens of microseconds in a VM — would otherwise
/// close the window for good, every later wait paying it again.
/// `max_ns = 0` disables polling. Polling is skipped while any fd handler without a `poll`
/// probe is registered, and stops as soon as the backend has events (io_uring: completions in
/// the ring, seen without a syscall; with DEFER_TASKRUN and requests in flight, never started).
struct poll_params {
    std::int64_t max_ns = 32768;  ///< QEMU's IOThread default
    std::int64_t grow = 0;
    std::int64_t shrink = 0;
};

/// The grow/shrink rule above as a pure function: the next `poll_ns` after an iteration that
/// polled for `poll_ns` and then blocked for `block_ns` in total.
std::int64_t next_poll_ns(std::int64_t poll_ns, std::int64_t block_ns,
                          const poll_params& params) noexcept;

struct context_options {
    /// `automatic` honours the CORIO_BACKEND environment variable (io_uring|epoll|poll|auto) and
    /// otherwise tries io_uring, then epoll, then poll, logging once why it fell back. Any other
    /// value forces that backend: if it cannot be set up, construction throws corio::error. A
    /// build without io_uring (CORIO_HAS_IO_URING 0, corio/config.hpp) starts at epoll, and
    /// forcing io_uring there throws corio::error(ENOSYS).
    backend_kind backend = backend_kind::automatic;
    /// Shown in logs, stats and abort messages.
    std::string name = "corio";
    /// io_uring: submission queue entries (the completion queue is twice that; completions
    /// beyond it are kept by the kernel, never lost).
    unsigned ring_entries = 256;
    /// io_uring: submit as soon as this many requests are queued (QEMU's aio_max_batch);
    /// 0 = only when the loop enters the kernel anyway, or when the submission queue is full.
    unsigned max_batch = 0;
    /// Adaptive polling; see poll_params. Validated as set_poll_params does.
    poll_params polling{};
};

/// Per-context counters. Written by the home thread only; readable from any thread.
struct context_stats {
    std::uint64_t iterations = 0;      ///< poll() calls
    std::uint64_t backend_waits = 0;   ///< calls into the backend's wait (each one a syscall)
    std::uint64_t blocking_waits = 0;  ///< backend waits with a non-zero timeout
    std::uint64_t wakeups = 0;         ///< times the notifier eventfd was found readable
    std::uint64_t bh_runs = 0;         ///< bottom-half callbacks run (one-shots included)
    std::uint64_t fd_events = 0;       ///< fd read/write/poll-ready callbacks run
    std::uint64_t timers_fired = 0;    ///< timer callbacks run
    std::uint64_t poll_hits = 0;       ///< busy-polling rounds that found work (no block)
    std::int64_t poll_ns = 0;          ///< the current adaptive polling window
};

/// "iterations=… backend_waits=… … timers_fired=… poll_hits=… poll_ns=…": every counter, in
/// declaration order. Allocates. (<corio/fmt.hpp> formats a context_stats with the same text.)
std::string to_string(const context_stats& s);

/// Callbacks of an fd handler (QEMU's aio_set_fd_handler arguments). `read` is called while
/// the fd is readable (or hung up / in error), `write` while it is writable: readiness is
/// level-triggered on every backend. `poll` is the busy-polling probe and `poll_ready` its
/// consumer; a `poll` without `poll_ready` is ignored.
struct fd_callbacks {
    void (*read)(void* opaque) = nullptr;
    void (*write)(void* opaque) = nullptr;
    bool (*poll)(void* opaque) = nullptr;
    void (*poll_ready)(void* opaque) = nullptr;
    /// A hint: the handler waits for one event and is then most often removed, and the fd soon
    /// registered again (a coroutine's I/O wait). Semantics do not change: a handler left
    /// registered keeps being called while its fd is ready. The backend may use it to make the
    /// removal after the event and the next registration of the fd cheaper.
    bool once = false;
};

class context {
public:
    /// Creates the loop, its notifier eventfd and its backend. Throws corio::error when any of
    /// them cannot be set up, or when CORIO_BACKEND holds an unknown value.
    explicit context(context_options options = {});
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    const std::string& name() const noexcept;
    /// The backend actually in use (never `automatic`).
    backend_kind backend() const noexcept;
    /// Whether the calling thread is this context's home thread.
    bool is_home_thread() const noexcept;

    // ---- the loop (home thread only; calling from another thread aborts) ------------------

    /// One iteration (QEMU's aio_poll). Non-blocking never sleeps. Blocking sleeps until an fd
    /// is ready, a timer or BH is due, or `notify()`. Returns true iff a callback ran (a BH, an
    /// fd or poll-ready callback, a timer, a completion); a blocking call woken only by
    /// `notify()` returns false. Callbacks may call poll() recursively (nested loops): every
    /// pending item is dispatched exactly once across the nesting. An exception thrown by a
    /// callback propagates out of poll(); work not yet run stays pending.
    bool poll(bool blocking);
    /// Runs blocking iterations until `stop()`; the stop request is consumed on return.
    void run();
    /// Runs blocking iterations until `pred()` is true (checked before each iteration).
    template <class Pred>
    void run_until(Pred&& pred) {
        while (!pred()) poll(true);
    }
    /// Makes `run()` return after the current iteration. Any thread; async-signal-safe. The
    /// home thread may destroy the context once run() has returned: the destructor waits for
    /// a stop() still in progress on another thread.
    void stop() noexcept;
    /// The timeout the next blocking iteration would use, in ns: 0 if work is pending (a BH, a
    /// ready handler, an expired timer), else until the nearest timer, else -1 (infinite).
    std::int64_t compute_timeout();

    // ---- notification (QEMU's aio_notify / aio_notify_accept) ------------------------------

    /// Wakes a blocked poll(true), or keeps the next one from sleeping. Any thread;
    /// async-signal-safe. Costs no syscall unless the loop is about to block or blocked.
    void notify() noexcept;
    /// Consumes a notification (home thread; poll() calls it after every wait).
    void notify_accept() noexcept;

    // ---- bottom halves -----------------------------------------------------------------------

    /// Creates a BH (allocates; any thread). `name` must outlive the BH (a string literal).
    bottom_half make_bh(callback cb, const char* name = "bh");
    /// One-shot BH (QEMU's aio_bh_schedule_oneshot): runs `cb` once on the home thread, soon.
    /// Any thread; allocates, so not async-signal-safe. Never runs if the context is destroyed
    /// first (the callable is destroyed then).
    void post(callback cb, const char* name = "post");

    /// Queues `item` to run on the home thread, soon (`item->run(item)` from a BH pass), in
    /// posting order. Any thread; never allocates (one push, one BH schedule, at most one
    /// eventfd write); not async-signal-safe only in that the item's owner must be valid.
    /// Items still queued when the context is destroyed are dropped without running.
    void post_item(work_item* item) noexcept;

    // ---- fd handlers (home thread only) ------------------------------------------------------

    /// Registers `fd`. Throws corio::error: EBADF for a negative or closed fd, EEXIST if it
    /// already has a handler here, EINVAL if neither read nor write nor poll is given; on error
    /// nothing changes.
    void add_fd_handler(int fd, const fd_callbacks& callbacks, void* opaque);
    /// Registers `fd` or replaces its handler (QEMU's aio_set_fd_handler; removal is
    /// `remove_fd_handler`). The old callbacks are never called after this returns, even if
    /// the fd was already found ready in the current iteration. Same errors as add, minus EEXIST.
    void set_fd_handler(int fd, const fd_callbacks& callbacks, void* opaque);
    /// Unregisters `fd`; its callbacks are never called afterwards. Safe from inside any
    /// callback, its own included. Throws corio::error(ENOENT) for an unknown fd.
    void remove_fd_handler(int fd);
    bool has_fd_handler(int fd) const noexcept;

    /// An fd handler on `notifier` whose read callback runs after the notifier was set; the
    /// callback is responsible for `test_and_clear()` (QEMU's aio_set_event_notifier).
    void set_event_notifier(event_notifier& notifier, void (*read)(void*), void* opaque,
                            bool (*poll)(void*) = nullptr, void (*poll_ready)(void*) = nullptr);
    void remove_event_notifier(event_notifier& notifier);

    // ---- clocks
    // ----------------------------------------------------------------------------------

    /// Current time of `clock` in ns (any thread).
    std::int64_t now(clock_type clock) const noexcept;
    /// Moves the manual clock forward and wakes the loop. Any thread. Negative is ignored.
    void advance_manual_clock(std::chrono::nanoseconds delta) noexcept;

    // ---- adaptive polling --------------------------------------------------------------------

    /// Sets the polling parameters (any thread; takes effect at the next iteration, which it
    /// wakes). Throws corio::error(EINVAL) for a negative value, changing nothing. Resets the
    /// adaptive window to 0.
    void set_poll_params(std::int64_t max_ns, std::int64_t grow, std::int64_t shrink);
    poll_params get_poll_params() const noexcept;
    /// Poll begin/end callbacks of an event notifier registered with set_event_notifier: `begin`
    /// runs when the loop starts busy polling, `end` when it stops (before it blocks), so the
    /// notifier's producer can suppress its eventfd writes while it is polled. Home thread.
    void set_event_notifier_poll(event_notifier& notifier, void (*begin)(void*),
                                 void (*end)(void*));

    // ---- io_uring submission path ------------------------------------------------------------

    /// Whether `add_sqe` is available (the backend is io_uring; never in a build without it).
    bool has_io_uring() const noexcept { return has_io_uring_; }
    /// Queues one io_uring request (home thread only): `prep(sqe, opaque)` fills it, the loop
    /// owns user_data, and `handler->cb` runs for each of its CQEs. Never fails: a full
    /// submission queue is submitted and retried. Submission is batched with the next wait of
    /// the loop (see context_options::max_batch). Aborts unless has_io_uring().
    /// Destroying the context with requests in flight cancels them and waits until the kernel
    /// is done with them, however long that takes (a request still in flight after 1 s is named
    /// on stderr, and again every 10 s); their handlers are not called.
    void add_sqe(sqe_prep_fn prep, void* opaque, cqe_handler* handler);
    /// Asks the kernel to cancel the request of `handler` (IORING_OP_ASYNC_CANCEL; home thread).
    /// Its handler still runs for its last CQE: with -ECANCELED, or with the normal result when
    /// the cancel came too late. Cancelling a request that already completed is harmless.
    void cancel_sqe(cqe_handler* handler);

    /// Keeps the context from being destroyed while another thread finishes a "publish, then
    /// notify or post" sequence on it: ~context waits until every keep_alive is gone (they are
    /// meant to last a few instructions). Take it while the context is known to be alive, i.e.
    /// before publishing what may let its owner destroy it (QEMU holds a context reference
    /// across aio_co_schedule for the same reason). post, post_item, stop and
    /// advance_manual_clock take one internally.
    class keep_alive {
    public:
        explicit keep_alive(context& ctx) noexcept;
        ~keep_alive();
        keep_alive(const keep_alive&) = delete;
        keep_alive& operator=(const keep_alive&) = delete;

    private:
        detail::loop* loop_;
    };

    /// This context's thread pool, created on first use (home thread; see thread_pool.hpp).
    thread_pool& pool();

    /// A snapshot of the counters.
    context_stats stats() const noexcept;

    /// The context whose poll() is running on this thread (innermost), else — on the main
    /// thread — `main_context()`, else null.
    static context* current() noexcept;

private:
    friend class timer;
    std::unique_ptr<detail::loop> loop_;
    bool has_io_uring_;                  // fixed at construction; read on every I/O operation
    std::unique_ptr<thread_pool> pool_;  // destroyed first: its workers post to the loop
};

/// The main thread's default context, created on first use (which must be on the main thread).
context& main_context();

}  // namespace corio
