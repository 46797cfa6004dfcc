// fdmon::monitor — the seam between the loop and the kernel's readiness/completion interfaces
// (QEMU's FDMonOps). Each backend is one file behind this interface, known only to
// select.cpp, which sets one up (select.hpp).
//
// fdmon knows nothing of contexts or coroutines. It sees `handler` nodes — an fd, the events
// wanted and whether the node can be busy-polled from userspace — and reports ready nodes on a
// `ready_list` owned by the caller. Every member function is called on the home thread of the
// loop that owns the monitor; none is thread-safe, none is re-entered except `wait` (a callback
// that runs a nested loop iteration waits again; the outer wait has returned by then).
//
// Readiness is level-triggered on every backend: a node whose fd stays ready is reported by
// every wait until it is drained or unregistered.
#pragma once

#include <corio/backend.hpp>
#include <corio/cqe_handler.hpp>

#include <cstdint>

namespace corio::fdmon {

/// A registered fd as a backend sees it. Owned by the loop; a backend keeps pointers to nodes
/// between `update(nullptr, n)` and `update(n, ...)` only.
struct handler {
    int fd = -1;
    std::uint32_t events = 0;  ///< POLLIN and/or POLLOUT; 0 = not watched by the kernel
    bool pollable = false;     ///< has a userspace poll probe (does not force a kernel wait)
    /// The owner waits for one event: once reported, the node is most likely removed and the
    /// same fd registered again soon after. A backend may make that cycle cheaper; a node that
    /// stays registered is still reported while its fd is ready (level-triggered).
    bool once = false;
    void* backend = nullptr;  ///< the backend's per-registration state, if it keeps any

    // Ready-list state, written by `ready_list::push` and by the consumer.
    std::uint32_t revents = 0;
    bool on_ready_list = false;
    handler* ready_next = nullptr;
};

/// FIFO of ready nodes. A node already queued gets its revents merged, so a nested wait that
/// sees an fd the outer iteration already queued does not queue it twice.
class ready_list {
public:
    void push(handler* h, std::uint32_t revents) noexcept {
        h->revents |= revents;
        if (h->on_ready_list) return;
        h->on_ready_list = true;
        h->ready_next = nullptr;
        if (tail_) {
            tail_->ready_next = h;
        } else {
            head_ = h;
        }
        tail_ = h;
    }
    /// Unlinks the oldest node (its revents stay for the caller to consume), or null.
    handler* pop() noexcept {
        handler* h = head_;
        if (!h) return nullptr;
        head_ = h->ready_next;
        if (!head_) tail_ = nullptr;
        h->on_ready_list = false;
        return h;
    }
    bool empty() const noexcept { return head_ == nullptr; }

private:
    handler* head_ = nullptr;
    handler* tail_ = nullptr;
};

class monitor {
public:
    virtual ~monitor() = default;
    monitor() = default;
    monitor(const monitor&) = delete;
    monitor& operator=(const monitor&) = delete;

    virtual backend_kind kind() const noexcept = 0;

    /// Registration change: add (old null), remove (new null) or replace (both; same fd).
    /// Throws corio::error on failure, with the registration unchanged: EBADF when the new
    /// node's fd is not open. Removal never fails: an fd the kernel already forgot (closed) is
    /// simply forgotten here too.
    void update(handler* old_node, handler* new_node) {
        do_update(old_node, new_node);
        if (old_node && !old_node->pollable) --unpollable_;
        if (new_node && !new_node->pollable) ++unpollable_;
    }

    /// Waits at most `timeout_ns` (-1 = forever, 0 = just look) and pushes every ready node on
    /// `ready`. Returns the number of nodes reported. EINTR is a normal, empty return.
    virtual int wait(ready_list& ready, std::int64_t timeout_ns) = 0;

    /// True when the loop must call `wait` even with a zero timeout because something cannot
    /// be observed from userspace (QEMU: readiness backends when a handler has no poll probe;
    /// io_uring when completions or submissions are pending). Inline: an idle backend costs no
    /// call.
    bool need_wait() const noexcept {
        return unpollable_ > 0 || (may_have_work_ && backend_need_wait());
    }

    /// Backend-specific completions, called once per iteration before the BH pass: io_uring
    /// reaps its completion queue here, calling CQE handlers and pushing fd readiness on
    /// `ready`. Returns true if a handler ran. Re-entrant: a handler may run a nested iteration.
    bool dispatch(ready_list& ready) { return may_have_work_ && backend_dispatch(ready); }

    /// Whether `add_sqe` works.
    virtual bool has_io_uring() const noexcept { return false; }
    /// Queues one io_uring request; see context::add_sqe. Only backends with has_io_uring().
    virtual void add_sqe(sqe_prep_fn prep, void* opaque, cqe_handler* handler);
    /// Requests cancellation of `handler`'s request; see context::cancel_sqe.
    virtual void cancel_sqe(cqe_handler* handler);

protected:
    /// Throws corio::error(EBADF) unless `fd` is open (for backends whose kernel interface does
    /// not tell at registration).
    static void check_fd(int fd);

    virtual void do_update(handler* old_node, handler* new_node) = 0;
    virtual bool backend_need_wait() const noexcept { return false; }
    virtual bool backend_dispatch(ready_list& ready) {
        (void)ready;
        return false;
    }

    /// Set by a backend whenever it may hold submissions or completions that only it can see
    /// (io_uring: after entering the kernel or queueing a request); while it is false the loop
    /// calls neither backend_need_wait nor backend_dispatch.
    bool may_have_work_ = false;

private:
    int unpollable_ = 0;  // registered nodes without a poll probe
};

}  // namespace corio::fdmon
