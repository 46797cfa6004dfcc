// Bottom-half queues of one loop (QEMU's BH list and slices), home-thread and cross-thread halves.
//
// Two sources feed a pass:
//  - the *local* FIFO, appended by schedule() on the home thread with plain stores: no atomic
//    read-modify-write, no syscall. A signal handler on the home thread may interrupt the home
//    thread anywhere, so every local-FIFO link change runs inside a `busy` section; a schedule
//    that finds `busy` set (it must be a signal handler interrupting it) takes the remote path.
//  - the *remote* stack, pushed by every other thread with one atomic exchange (wait-free: a
//    producer never retries; its link store may lag the exchange by a few instructions, so the
//    consumer waits for a `link_pending` marker to be replaced).
// A pass first moves the remote stack into the local FIFO in push order. Every append stamps
// the node with the next sequence number; a pass runs the FIFO's head while its stamp is at
// most the last stamp given out when the pass began. So a BH scheduled by a callback (stamped
// later) runs in the next pass, and a nested pass (a callback calls poll) drains everything
// stamped before it — the rest of the outer pass included — after which the outer pass finds
// only later stamps and ends: each scheduled BH runs exactly once whatever the nesting. This is
// QEMU's slice list collapsed into one counter: nothing to link per pass, nothing to restore
// when a callback throws (the unrun BHs simply stay at the head).
#pragma once

#include <corio/callback.hpp>

#include <atomic>
#include <cstdint>

namespace corio::detail {

class loop;

struct bh_node {
    // Bits of `remote`, the only BH state other threads touch.
    static constexpr std::uint32_t r_queued = 1;     // physically on the remote stack
    static constexpr std::uint32_t r_scheduled = 2;  // scheduled from another thread
    static constexpr std::uint32_t r_deleted = 4;    // deleted; free once unreferenced

    bh_node(loop* o, callback c, const char* n, bool one_shot)
        : owner(o), cb(std::move(c)), name(n), oneshot(one_shot) {}

    loop* const owner;
    callback cb;
    const char* const name;
    const bool oneshot;

    // Written by schedulers (fetch_or), cleared by the pass (fetch_and); acq_rel on both sides,
    // so whatever a thread wrote before schedule() is visible to the callback.
    std::atomic<std::uint32_t> remote{0};
    // Remote-stack link: written by the pusher after its exchange, read by the consumer.
    std::atomic<bh_node*> remote_next{nullptr};

    // Home thread only (inside a busy section).
    bh_node* local_next = nullptr;
    std::uint64_t stamp = 0;       // sequence number of its append to the local FIFO
    bool queued_local = false;     // on the local FIFO
    bool scheduled_local = false;  // scheduled from the home thread since the last dequeue
    bool running = false;          // its callback is on the stack: freeing it must wait
    bool free_after_run = false;   // deleted while running: freed when the callback returns

    // Registry of live (not deleted) BHs, under the loop's registry mutex; one-shots are not in it.
    bh_node* live_prev = nullptr;
    bh_node* live_next = nullptr;
};

/// An intrusive singly linked FIFO through `local_next`, stamping appends.
struct bh_fifo {
    bh_node* head = nullptr;
    bh_node* tail = nullptr;
    std::uint64_t last_stamp = 0;

    bool empty() const noexcept { return head == nullptr; }
    void push(bh_node* n) noexcept {
        n->local_next = nullptr;
        n->stamp = ++last_stamp;
        if (tail) {
            tail->local_next = n;
        } else {
            head = n;
        }
        tail = n;
    }
    bh_node* pop() noexcept {
        bh_node* n = head;
        head = n->local_next;
        if (!head) tail = nullptr;
        return n;
    }
};

}  // namespace corio::detail
