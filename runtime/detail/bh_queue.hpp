// Bottom-half queues of one loop (QEMU's BH list + slices), home-thread and cross-thread halves.
//
// Two sources feed a pass:
//  - the *local* FIFO, appended by schedule() on the home thread with plain stores: no atomic
//    read-modify-write, no syscall. A signal handler on the home thread may interrupt the home
//    thread anywhere, so every local-queue manipulation runs inside a `busy` section; a schedule
//    that finds `busy` set (it must be a signal handler interrupting it) takes the remote path.
//  - the *remote* stack, pushed by every other thread with one atomic exchange (wait-free: a
//    producer never retries; its link store may lag the exchange by a few instructions, so the
//    consumer waits for a `link_pending` marker to be replaced).
// A pass moves the remote stack into the local FIFO in push order, then takes the whole local
// FIFO as a *slice* and runs it. BHs scheduled meanwhile land in the fresh FIFO and run in the
// next pass. A nested pass (a callback calls poll) takes a new slice and first drains what is
// left of the older ones, so each scheduled BH runs exactly once whatever the nesting.
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
    bool queued_local = false;     // on the local FIFO or in a slice
    bool scheduled_local = false;  // scheduled from the home thread since the last dequeue
    bool running = false;          // its callback is on the stack: freeing it must wait
    bool free_after_run = false;   // deleted while running: freed when the callback returns

    // Registry of live (not deleted) BHs, under the loop's registry mutex; one-shots are not in it.
    bh_node* live_prev = nullptr;
    bh_node* live_next = nullptr;
};

/// An intrusive singly linked FIFO of BHs through `local_next`.
struct bh_fifo {
    bh_node* head = nullptr;
    bh_node* tail = nullptr;

    bool empty() const noexcept { return head == nullptr; }
    void push(bh_node* n) noexcept {
        n->local_next = nullptr;
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
    /// Puts `front` before the current contents.
    void prepend(bh_fifo& front) noexcept {
        if (front.empty()) return;
        front.tail->local_next = head;
        if (!tail) tail = front.tail;
        head = front.head;
        front = {};
    }
};

/// One pass's share of the local FIFO. Slices live on the stack of the pass that took them and
/// are linked oldest → newest while the pass runs.
struct bh_slice {
    bh_fifo queue;
    bh_slice* older = nullptr;
    bh_slice* newer = nullptr;
};

}  // namespace corio::detail
