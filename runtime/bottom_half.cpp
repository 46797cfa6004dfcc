// Bottom halves: schedule, cancel, delete and the BH pass. The queue design is described in
// runtime/detail/bh_queue.hpp.
#include "runtime/detail/loop.hpp"

#include <corio/bottom_half.hpp>

#include <sched.h>
#include <cstdio>
#include <cstdlib>

namespace corio {

void bottom_half::schedule() const noexcept {
    if (!node_) [[unlikely]] {
        std::fputs("corio: schedule() on an empty bottom_half\n", stderr);
        std::abort();
    }
    node_->owner->schedule(node_);
}

void bottom_half::cancel() const noexcept {
    if (node_) node_->owner->cancel(node_);
}

void bottom_half::reset() noexcept {
    if (detail::bh_node* n = std::exchange(node_, nullptr)) n->owner->destroy(n);
}

const char* bottom_half::name() const noexcept {
    return node_ ? node_->name : "";
}

}  // namespace corio

namespace corio::detail {
namespace {

// Marks a remote-stack link its pusher has not stored yet.
bh_node* const link_pending = reinterpret_cast<bh_node*>(std::uintptr_t{1});

// Compiler-only barrier around home-thread queue edits: the only concurrent observer of
// `local_busy` is a signal handler running on the same thread.
struct busy_section {
    explicit busy_section(std::atomic<bool>& flag) noexcept : flag_(flag) {
        flag_.store(true, std::memory_order_relaxed);
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
    ~busy_section() {
        std::atomic_signal_fence(std::memory_order_seq_cst);
        flag_.store(false, std::memory_order_relaxed);
    }
    busy_section(const busy_section&) = delete;
    busy_section& operator=(const busy_section&) = delete;

private:
    std::atomic<bool>& flag_;
};

void push_remote(std::atomic<bh_node*>& head, bh_node* n) noexcept {
    n->remote_next.store(link_pending, std::memory_order_relaxed);
    bh_node* prev = head.exchange(n, std::memory_order_acq_rel);
    // From here the consumer may hold `n`; it waits for this store (see take_remote).
    n->remote_next.store(prev, std::memory_order_release);
}

void free_or_defer(bh_node* n) noexcept {
    if (n->running) {
        n->free_after_run = true;
    } else {
        delete n;
    }
}

}  // namespace

bh_node* loop::make_bh(callback cb, const char* bh_name, bool oneshot) {
    auto* n = new bh_node(this, std::move(cb), bh_name, oneshot);
    if (!oneshot) {
        std::lock_guard lock(registry_mutex);
        n->live_next = live_bhs;
        if (live_bhs) live_bhs->live_prev = n;
        live_bhs = n;
    }
    return n;
}

void loop::schedule(bh_node* n) noexcept {
    if (on_home_thread() && !local_busy.load(std::memory_order_relaxed)) {
        {
            busy_section busy(local_busy);
            n->scheduled_local = true;
            if (!n->queued_local) {
                n->queued_local = true;
                bhs.push(n);
            }
        }
        // notify_me is non-zero here only when this is a signal handler that interrupted the
        // home thread between "about to block" and "woke up": the wait must be cut short.
        if (notify_me.load(std::memory_order_relaxed) != 0) kick();
        return;
    }
    const std::uint32_t old =
        n->remote.fetch_or(bh_node::r_scheduled | bh_node::r_queued, std::memory_order_acq_rel);
    if (!(old & bh_node::r_queued)) push_remote(remote_head, n);
    notify();
}

void loop::cancel(bh_node* n) noexcept {
    assert_home("bottom_half::cancel");
    n->scheduled_local = false;
    if (n->remote.load(std::memory_order_relaxed) & bh_node::r_scheduled) {
        n->remote.fetch_and(~bh_node::r_scheduled, std::memory_order_acq_rel);
    }
}

void loop::destroy(bh_node* n) noexcept {
    {
        std::lock_guard lock(registry_mutex);
        if (n->live_prev) n->live_prev->live_next = n->live_next;
        if (n->live_next) n->live_next->live_prev = n->live_prev;
        if (live_bhs == n) live_bhs = n->live_next;
    }
    // Unreferenced by any queue: free now (or when its running callback returns).
    if (on_home_thread() && !n->queued_local && n->remote.load(std::memory_order_acquire) == 0) {
        free_or_defer(n);
        return;
    }
    // Queued somewhere, or another thread: the pass that dequeues it frees it.
    const std::uint32_t old =
        n->remote.fetch_or(bh_node::r_deleted | bh_node::r_queued, std::memory_order_acq_rel);
    if (!(old & bh_node::r_queued)) push_remote(remote_head, n);
    notify();
}

namespace {

// Moves the remote stack into the local FIFO, oldest push first.
void take_remote(loop& l) noexcept {
    if (l.remote_head.load(std::memory_order_relaxed) == nullptr) return;
    bh_node* top = l.remote_head.exchange(nullptr, std::memory_order_acq_rel);
    bh_node* in_order = nullptr;
    while (top) {
        bh_node* next = top->remote_next.load(std::memory_order_acquire);
        for (int spins = 0; next == link_pending; ++spins) {
            // The pusher was preempted between its exchange and its link store.
            if (spins > 64) sched_yield();
            next = top->remote_next.load(std::memory_order_acquire);
        }
        top->remote_next.store(in_order, std::memory_order_relaxed);
        in_order = top;
        top = next;
    }
    busy_section busy(l.local_busy);
    while (in_order) {
        bh_node* n = in_order;
        // Read the link before clearing r_queued: from then on another thread may push `n` again.
        in_order = n->remote_next.load(std::memory_order_relaxed);
        n->remote.fetch_and(~bh_node::r_queued, std::memory_order_acq_rel);
        if (!n->queued_local) {
            n->queued_local = true;
            l.bhs.push(n);
        }
    }
}

// The head of the local FIFO if a pass that began at `last` may run it, unlinked. For the
// node's own flags every interleaving with a signal handler's schedule() is a schedule before
// or after the dequeue: the caller reads `scheduled_local` after `queued_local` was cleared.
bh_node* dequeue(loop& l, std::uint64_t last) noexcept {
    bh_node* n = l.bhs.head;
    if (!n || n->stamp > last) return nullptr;
    busy_section busy(l.local_busy);
    l.bhs.pop();
    n->queued_local = false;
    return n;
}

// Marks a BH as running for the duration of its callback; frees it afterwards when it is a
// one-shot or was deleted meanwhile (also when the callback throws).
struct run_scope {
    explicit run_scope(bh_node* n) noexcept : n_(n) { n_->running = true; }
    ~run_scope() {
        n_->running = false;
        if (n_->oneshot || n_->free_after_run) delete n_;
    }
    run_scope(const run_scope&) = delete;
    run_scope& operator=(const run_scope&) = delete;

private:
    bh_node* n_;
};

}  // namespace

bool loop::bh_poll() {
    take_remote(*this);
    const std::uint64_t last = bhs.last_stamp;
    bool progress = false;
    while (bh_node* n = dequeue(*this, last)) {
        bool run = std::exchange(n->scheduled_local, false);
        std::uint32_t r = n->remote.load(std::memory_order_acquire);
        if (r & bh_node::r_scheduled) {
            r = n->remote.fetch_and(~bh_node::r_scheduled, std::memory_order_acq_rel);
            run = true;
        }
        if (r & bh_node::r_deleted) {
            // Still on the remote stack: the pass that takes it from there frees it.
            if (!(r & bh_node::r_queued)) free_or_defer(n);
            continue;
        }
        if (!run) continue;  // cancelled
        run_scope running(n);
        bh_runs.bump();
        progress = true;
        n->cb();
    }
    return progress;
}

}  // namespace corio::detail
