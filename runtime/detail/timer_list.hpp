// Timer lists of one loop: one min-heap per clock, ordered by (deadline, arming sequence), plus
// the loop-wide FIFO of expired timers whose callbacks have not run yet.
//
// Heap entries carry the sort key next to the `timer*` (comparisons never touch the timers,
// which matters with a million of them) and each timer knows its index, so arm, re-arm and
// cancel are O(log n) without allocation (the vector only grows, at its high-water mark). Expired
// timers move from the heap to the expired FIFO before any callback runs: callbacks can then
// cancel, re-arm or destroy any timer (themselves included) and nested loop iterations keep
// draining the same FIFO, so every expiry is delivered exactly once. Home thread only.
#pragma once

#include <corio/timer.hpp>

#include <cstdint>
#include <vector>

namespace corio::detail {

class timer_list {
public:
    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    /// Earliest deadline; the list must not be empty.
    std::int64_t earliest() const noexcept { return heap_.front().deadline; }

    /// Arms `t` (already cancelled by the caller) at `deadline`.
    void insert(timer* t, std::int64_t deadline, std::uint64_t seq) {
        t->deadline_ = deadline;
        t->state_ = timer::state::armed;
        heap_.push_back({deadline, seq, t});
        sift_up(static_cast<std::uint32_t>(heap_.size() - 1));
    }

    /// Removes an armed `t` from the heap.
    void erase(timer* t) noexcept {
        const std::uint32_t i = t->heap_index_;
        const entry last = heap_.back();
        heap_.pop_back();
        if (last.t != t) {
            heap_[i] = last;
            if (i > 0 && before(last, heap_[parent(i)])) {
                sift_up(i);
            } else {
                sift_down(i);
            }
        }
        t->state_ = timer::state::idle;
    }

    /// Moves every timer with deadline <= now to the expired FIFO, in expiry order.
    void expire(std::int64_t now, timer*& head, timer*& tail) noexcept {
        while (!heap_.empty() && heap_.front().deadline <= now) {
            timer* t = heap_.front().t;
            erase(t);
            t->state_ = timer::state::expired;
            t->expired_prev_ = tail;
            t->expired_next_ = nullptr;
            if (tail) {
                tail->expired_next_ = t;
            } else {
                head = t;
            }
            tail = t;
        }
    }

private:
    struct entry {
        std::int64_t deadline;
        std::uint64_t seq;  // arming order, breaks deadline ties
        timer* t;
    };

    static std::uint32_t parent(std::uint32_t i) noexcept { return (i - 1) / 2; }
    static bool before(const entry& a, const entry& b) noexcept {
        return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
    }
    void place(const entry& e, std::uint32_t i) noexcept {
        heap_[i] = e;
        e.t->heap_index_ = i;
    }
    void sift_up(std::uint32_t i) noexcept {
        const entry t = heap_[i];
        while (i > 0 && before(t, heap_[parent(i)])) {
            place(heap_[parent(i)], i);
            i = parent(i);
        }
        place(t, i);
    }
    void sift_down(std::uint32_t i) noexcept {
        const entry t = heap_[i];
        const auto n = static_cast<std::uint32_t>(heap_.size());
        for (;;) {
            std::uint32_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
            if (!before(heap_[child], t)) break;
            place(heap_[child], i);
            i = child;
        }
        place(t, i);
    }

    std::vector<entry> heap_;
};

}  // namespace corio::detail
