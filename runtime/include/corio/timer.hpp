// corio::timer — a callback run by a context's loop when a clock reaches a deadline
// (QEMU's QEMUTimer / aio_timer_new).
#pragma once

#include <chrono>
#include <corio/callback.hpp>
#include <cstdint>

namespace corio {

class context;
namespace detail {
class loop;
class timer_list;
}  // namespace detail

/// The clocks every context keeps one timer list for.
enum class clock_type : std::uint8_t {
    monotonic,  ///< CLOCK_MONOTONIC: never jumps; the default.
    realtime,   ///< CLOCK_REALTIME: wall clock, follows settimeofday/NTP.
    manual,     ///< Advanced only by `context::advance_manual_clock`: deterministic tests.
};
inline constexpr int clock_count = 3;

/// A timer on one clock of one context. Not copyable, not movable (the loop links it by
/// address). Owning and RAII: destruction cancels it, also from inside its own callback.
///
/// Contract:
///  - Home thread of the context only (arm/cancel/destroy); the callback runs on it, from the
///    loop, after fd handlers (QEMU's order). Arming and cancelling are O(log n), never allocate.
///  - Deadlines are absolute nanoseconds on the timer's clock (`context::now(clock)`),
///    ns resolution. A deadline in the past fires on the next loop iteration.
///  - Expiry order is deadline order; equal deadlines fire in arming order.
///  - A timer re-armed from a callback for a deadline that has already passed fires in the next
///    iteration, not in the current one: a timer that keeps re-arming at "now" cannot starve
///    the loop (QEMU runs it again in the same pass; corio deliberately does not).
///  - Cancelling (or destroying) a timer that has expired but whose callback has not run yet
///    (another callback of the same pass got there first) prevents the call.
class timer {
public:
    timer(context& ctx, clock_type clock, callback cb);
    timer(context& ctx, callback cb) : timer(ctx, clock_type::monotonic, std::move(cb)) {}
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;
    ~timer();

    /// Arm (or re-arm) at an absolute deadline in ns on this timer's clock; negative clamps to 0.
    void arm_at(std::int64_t deadline_ns);
    /// Arm (or re-arm) `delay` after the clock's current time.
    void arm_after(std::chrono::nanoseconds delay);
    /// Disarm; idempotent.
    void cancel() noexcept;
    /// Armed and not yet fired (an expired timer waiting for its callback counts as pending).
    bool pending() const noexcept { return state_ != state::idle; }
    /// The armed deadline in ns, or -1 when not pending.
    std::int64_t deadline() const noexcept { return pending() ? deadline_ : -1; }
    clock_type clock() const noexcept { return clock_; }
    context& owner() const noexcept { return *ctx_; }

private:
    friend class detail::loop;
    friend class detail::timer_list;
    enum class state : std::uint8_t { idle, armed, expired };

    context* ctx_;
    callback cb_;
    std::int64_t deadline_ = -1;
    std::uint32_t heap_index_ = 0;
    clock_type clock_;
    state state_ = state::idle;
    timer* expired_prev_ = nullptr;  // links on the context's expired list
    timer* expired_next_ = nullptr;
};

}  // namespace corio
