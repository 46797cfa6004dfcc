// detail::loop — the state behind corio::context, shared by the runtime's source files.
//
// Field ownership, in short: everything is home-thread-only except the members marked
// [any thread]; each of those says who writes it, who reads it and which barrier it pairs with.
#pragma once

#include "fdmon/monitor.hpp"
#include "runtime/detail/bh_queue.hpp"
#include "runtime/detail/timer_list.hpp"

#include <corio/context.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace corio::detail {

/// One per thread; its address identifies the thread. Initial-exec TLS: reading it is a
/// %fs-relative address computation, no call, and async-signal-safe (unlike pthread_self's
/// libc call or a dynamic-TLS lookup through __tls_get_addr).
inline thread_local char thread_token __attribute__((tls_model("initial-exec"))) = 0;

/// A counter written by the home thread only and read by anyone: a relaxed load+store, not a
/// read-modify-write, so bumping it costs what a plain increment costs.
struct counter {
    std::atomic<std::uint64_t> value{0};
    void bump() noexcept {
        value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

/// A registered fd handler. Copy-on-write: replacing a handler creates a new node and retires
/// the old one, so a node's callbacks never change while it is registered.
struct fd_node : fdmon::handler {
    fd_callbacks callbacks;
    void* opaque = nullptr;
    bool notifier = false;  // the loop's own eventfd: never progress, never user-visible
    bool deleted = false;   // unregistered; skipped by dispatch, freed by the outermost poll
    fd_node* deleted_next = nullptr;

    // Adaptive polling (adaptive_poll.cpp).
    void (*poll_begin)(void*) = nullptr;  // event notifiers: busy polling starts / stops
    void (*poll_end)(void*) = nullptr;
    bool on_poll_list = false;  // has a probe and has fired once
    bool poll_hit = false;      // queued on the ready list by a probe, not by the backend
    fd_node* poll_prev = nullptr;
    fd_node* poll_next = nullptr;
};

/// The registered fd handlers, indexed by fd number: fd numbers are small and dense, so a
/// vector beats a hash map, and registering a handler allocates nothing once the table has
/// grown to the highest fd used (a pointer per fd number).
class fd_table {
public:
    fd_node* find(int fd) const noexcept {
        return fd >= 0 && static_cast<std::size_t>(fd) < slots_.size() ? slots_[fd] : nullptr;
    }
    /// Registers `n` for `fd`, which must have no node (fd >= 0).
    void insert(int fd, fd_node* n) {
        const auto i = static_cast<std::size_t>(fd);
        if (i >= slots_.size()) slots_.resize(std::max(i + 1, 2 * slots_.size()), nullptr);
        slots_[i] = n;
        ++count_;
    }
    /// Replaces the node of a registered fd.
    void replace(int fd, fd_node* n) noexcept { slots_[static_cast<std::size_t>(fd)] = n; }
    void erase(int fd) noexcept {
        slots_[static_cast<std::size_t>(fd)] = nullptr;
        --count_;
    }
    bool empty() const noexcept { return count_ == 0; }
    bool contains(int fd) const noexcept { return find(fd) != nullptr; }
    /// Calls f(node) for every registered node; f must not change the table.
    template <class F>
    void for_each(F&& f) const {
        for (fd_node* n : slots_) {
            if (n) f(n);
        }
    }

private:
    std::vector<fd_node*> slots_;
    std::size_t count_ = 0;
};

class loop {
public:
    loop(context& owner, const context_options& options);
    ~loop();

    context& owner;
    const std::string name;
    const char* const home;  // &thread_token of the home thread

    bool on_home_thread() const noexcept { return home == &thread_token; }
    /// Aborts, naming the context and the call, when not on the home thread.
    void assert_home(const char* what) const noexcept {
        if (!on_home_thread()) [[unlikely]]
            wrong_thread(what);
    }
    [[noreturn]] void wrong_thread(const char* what) const noexcept;

    // ---- the iteration (context.cpp) -------------------------------------------------------
    bool poll(bool blocking);
    std::int64_t compute_timeout() const noexcept {
        if (bh_pending() || !ready.empty()) return 0;
        return armed_timers == 0 && !expired_head ? -1 : timer_timeout();
    }
    [[noreturn]] void fatal(const char* what) const noexcept;

    // ---- notifier (notifier.cpp) -----------------------------------------------------------
    void notify() noexcept;
    void notify_accept() noexcept {
        // Clearing only a set flag keeps the common iteration free of a full barrier; a flag
        // that reads false needs no clearing, and a notify() racing with this load leaves it
        // set for the next iteration, which then does not block: a spurious wake-up at worst,
        // never a lost one.
        if (notified.load(std::memory_order_relaxed)) {
            // The clear may overwrite a notify() whose work (a stop request, the manual clock,
            // a BH) the loads that follow must then see: none of them may be satisfied before
            // the clear is visible, which takes a full fence. A seq_cst store alone does not
            // order later acquire or relaxed loads (AArch64's LDAPR may pass an STLR): the
            // lost wake-up of BUG_ACCEPT_NO_FENCE in tests/model/notify.pml.
#if defined(__SANITIZE_THREAD__)
            // GCC's ThreadSanitizer rejects fences (-Wtsan). A seq_cst exchange does the job
            // on the hardware: later loads stay behind its acquire half.
            notified.exchange(false, std::memory_order_seq_cst);
#else
            notified.store(false, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
        }
    }
    void kick() noexcept;  // one eventfd write

    // ---- bottom halves (bottom_half.cpp) ---------------------------------------------------
    bh_node* make_bh(callback cb, const char* name, bool oneshot);
    void schedule(bh_node* n) noexcept;
    void cancel(bh_node* n) noexcept;
    void destroy(bh_node* n) noexcept;
    bool bh_poll();
    bool bh_pending() const noexcept {
        return !bhs.empty() || remote_head.load(std::memory_order_acquire) != nullptr;
    }

    // ---- fd handlers (context.cpp) ---------------------------------------------------------
    void register_fd(int fd, const fd_callbacks& callbacks, void* opaque, bool must_be_new);
    void unregister_fd(int fd);
    /// Throws the EBADF every registration reports for a negative or closed fd.
    [[noreturn]] void bad_fd(int fd) const;
    bool dispatch_ready();

    // ---- adaptive polling (adaptive_poll.cpp) -----------------------------------------------
    void store_poll_params(const poll_params& p) noexcept;
    poll_params load_poll_params() const noexcept;
    void poll_list_add(fd_node* n) noexcept;
    void poll_list_remove(fd_node* n) noexcept;
    /// Probes the notifier and the poll list once; queues hits on the ready list.
    bool probe_once() noexcept;
    /// Spins for up to the adaptive window (capped by `timeout`); returns the timeout left for
    /// the wait: 0 when something was found.
    std::int64_t busy_poll(std::int64_t timeout, std::int64_t start);
    /// poll_end callbacks and a last probe; true if that probe found something.
    bool leave_polling_mode() noexcept;

    // ---- timers (timer.cpp) ----------------------------------------------------------------
    std::int64_t now(clock_type clock) const noexcept;
    void arm(timer* t, std::int64_t deadline);
    void disarm(timer* t) noexcept;
    bool run_timers();
    std::int64_t timer_timeout() const noexcept;

    // ---- state -----------------------------------------------------------------------------
    std::unique_ptr<fdmon::monitor> monitor;
    const bool io_uring_backend;  // monitor->has_io_uring(), read by every I/O awaiter

    // Notifier (QEMU's notify_me / notified / event).
    const int event_fd;
    fd_node notifier_node;
    // [any thread] Written by the home thread only (+2 before a wait that may block, -2 after),
    // read by notify(). The seq_cst store before blocking pairs with the seq_cst load in
    // notify(): either notify() sees it and kicks the eventfd, or the home thread's re-check
    // after the store sees `notified` / the published work.
    std::atomic<std::uint32_t> notify_me{0};
    // [any thread] Set by notify() after the work is published (seq_cst store), cleared by the
    // home thread in notify_accept() *before* it looks at any work source (clear, then a full
    // fence that keeps those loads behind the clear).
    std::atomic<bool> notified{false};
    // [any thread] When the first eventfd write of the current blocking wait was made
    // (monotonic ns; 0: none yet). Set by kick() (first writer wins), reset by the home thread
    // before it announces a wait, read after it. Adaptive polling sizes its window by when the
    // work arrived, not by when the sleeping thread got back on a CPU (see loop::poll).
    std::atomic<std::int64_t> kicked_at{0};
    // [any thread] Set by stop(), consumed by run().
    std::atomic<bool> stop_requested{false};

    // Bottom halves (see bh_queue.hpp).
    bh_fifo bhs;  // scheduled (or deleted) and not yet dequeued by a pass
    // [any thread] Remote stack head: pushed with exchange (acq_rel) by other threads, taken with
    // exchange (acq_rel) by the pass, which then sees every node's fields as its pusher left them.
    std::atomic<bh_node*> remote_head{nullptr};
    // Home thread and signal handlers on it: set while the local FIFO's links are being
    // changed; paired with atomic_signal_fence only (a same-thread handler is the only reader).
    std::atomic<bool> local_busy{false};
    // Posted work items (post_item): a Treiber stack pushed by any thread with a CAS, taken
    // whole by `items_bh`'s callback, which runs the items oldest first.
    std::atomic<work_item*> items{nullptr};
    // [any thread] context::keep_alive count: incremented by a foreign thread while the context
    // is alive, decremented when it is done with it; ~context waits for 0 (acquire pairs with
    // the release decrement, so the foreign thread's last accesses happen before the teardown).
    std::atomic<int> keep_alives{0};
    bh_node* items_bh = nullptr;
    void run_items();
    std::mutex registry_mutex;  // guards the live-BH registry below
    bh_node* live_bhs = nullptr;

    // fd handlers.
    fd_table fds;
    fdmon::ready_list ready;
    fd_node* deleted_fds = nullptr;
    // Freed nodes kept for the next registration (linked by deleted_next, at most
    // max_spare_fds): a coroutine's I/O wait registers and removes a handler each time.
    fd_node* spare_fds = nullptr;
    int spare_count = 0;
#if defined(__SANITIZE_ADDRESS__)
    static constexpr int max_spare_fds = 0;  // every node freed: a stale pointer stays visible
#else
    static constexpr int max_spare_fds = 64;
#endif
    fd_node* new_fd_node();
    void free_fd_node(fd_node* n) noexcept;
    int depth = 0;  // poll() nesting

    // Timers.
    timer_list timers[clock_count];
    timer* expired_head = nullptr;
    timer* expired_tail = nullptr;
    std::uint64_t timer_seq = 0;
    std::size_t armed_timers = 0;  // over all clocks: lets an iteration skip the timer pass
    // [any thread] The manual clock: advanced by anyone (relaxed add, then notify()).
    std::atomic<std::int64_t> manual_now{0};

    // Adaptive polling. [any thread] The parameters are written by set_poll_params from any
    // thread and read by the home thread, relaxed: a stale value is used for one iteration at
    // most, and the setter's notify() wakes the loop. `poll_ns` is the window (home thread,
    // reset by the setter).
    std::atomic<std::int64_t> poll_max_ns{0}, poll_grow{0}, poll_shrink{0}, poll_ns{0};
    fd_node* poll_list = nullptr;
    bool polling_mode = false;

    // Counters.
    counter iterations, backend_waits, blocking_waits, wakeups, bh_runs, fd_events, timers_fired,
        poll_hits;
};

}  // namespace corio::detail
