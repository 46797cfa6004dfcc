// corio::bottom_half — QEMU's QEMUBH: a preallocated callback that any thread (or a signal
// handler) can ask the owning context to run soon.
#pragma once

#include <utility>

namespace corio {

class context;
namespace detail {
struct bh_node;
}

/// Owning handle to a bottom half created by `context::make_bh`. Move-only.
///
/// Contract:
///  - `schedule()` may be called from any thread and from an async-signal handler. It never
///    allocates, never locks and never blocks; it is wait-free (one atomic read-modify-write and,
///    only when the loop may be sleeping, one eventfd write). From the home thread it uses no
///    atomic read-modify-write at all. Scheduling N times before the callback runs runs it once.
///  - A BH scheduled from a BH callback (itself included) runs in the *next* pass of the loop, so
///    a self-rescheduling BH cannot starve fd handlers or timers. Within one pass, BHs run in the
///    order they were first scheduled (FIFO).
///  - `cancel()` must be called on the home thread of the context (aborts otherwise): a pending
///    run is dropped; a later `schedule()` works again. A cancel from another thread would race
///    with the pass anyway, so it is refused rather than pretending to a guarantee.
///  - Destroying the handle (or `reset()`) deletes the BH: its callback never runs again, even if
///    it was scheduled; the memory is reclaimed by the next BH pass of the context. Safe from
///    inside the BH's own callback and from any thread. Must happen before the context is
///    destroyed (the context aborts, naming the BH, otherwise).
class bottom_half {
public:
    bottom_half() noexcept = default;
    bottom_half(bottom_half&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    bottom_half& operator=(bottom_half&& other) noexcept {
        if (this != &other) {
            reset();
            node_ = std::exchange(other.node_, nullptr);
        }
        return *this;
    }
    bottom_half(const bottom_half&) = delete;
    bottom_half& operator=(const bottom_half&) = delete;
    ~bottom_half() { reset(); }

    /// Ask the context to run the callback (see the class contract). Aborts on an empty handle.
    void schedule() const noexcept;
    /// Drop a pending run. Home thread only.
    void cancel() const noexcept;
    /// Delete the BH now (deferred free). The handle becomes empty.
    void reset() noexcept;

    /// The name given at creation.
    const char* name() const noexcept;
    explicit operator bool() const noexcept { return node_ != nullptr; }

private:
    friend class context;
    explicit bottom_half(detail::bh_node* node) noexcept : node_(node) {}
    detail::bh_node* node_ = nullptr;
};

}  // namespace corio
