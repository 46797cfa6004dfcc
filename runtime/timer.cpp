// Timers: the public timer handle and the loop's timer pass (structure in timer_list.hpp).
#include "runtime/detail/loop.hpp"

#include <ctime>

namespace corio {

timer::timer(context& ctx, clock_type clock, callback cb)
    : ctx_(&ctx), cb_(std::move(cb)), clock_(clock) {}

timer::~timer() {
    cancel();
}

void timer::arm_at(std::int64_t deadline_ns) {
    ctx_->loop_->arm(this, deadline_ns);
}

void timer::arm_after(std::chrono::nanoseconds delay) {
    detail::loop& l = *ctx_->loop_;
    l.arm(this, l.now(clock_) + delay.count());
}

void timer::cancel() noexcept {
    if (state_ != state::idle) ctx_->loop_->disarm(this);
}

}  // namespace corio

namespace corio::detail {

std::int64_t loop::now(clock_type clock) const noexcept {
    if (clock == clock_type::manual) return manual_now.load(std::memory_order_acquire);
    timespec ts{};
    clock_gettime(clock == clock_type::realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void loop::arm(timer* t, std::int64_t deadline) {
    assert_home("timer::arm");
    disarm(t);
    timers[static_cast<int>(t->clock_)].insert(t, deadline < 0 ? 0 : deadline, ++timer_seq);
    ++armed_timers;
}

void loop::disarm(timer* t) noexcept {
    assert_home("timer::cancel");
    if (t->state_ == timer::state::armed) {
        timers[static_cast<int>(t->clock_)].erase(t);
        --armed_timers;
    } else if (t->state_ == timer::state::expired) {
        (t->expired_prev_ ? t->expired_prev_->expired_next_ : expired_head) = t->expired_next_;
        (t->expired_next_ ? t->expired_next_->expired_prev_ : expired_tail) = t->expired_prev_;
        t->state_ = timer::state::idle;
    }
}

std::int64_t loop::timer_timeout() const noexcept {
    if (expired_head) return 0;
    std::int64_t best = -1;
    for (clock_type c : {clock_type::monotonic, clock_type::realtime}) {
        const timer_list& list = timers[static_cast<int>(c)];
        if (list.empty()) continue;
        std::int64_t left = list.earliest() - now(c);
        if (left <= 0) return 0;
        if (best < 0 || left < best) best = left;
    }
    // The manual clock only moves when advanced (which notifies), so its future deadlines
    // never bound the sleep.
    const timer_list& manual = timers[static_cast<int>(clock_type::manual)];
    if (!manual.empty() && manual.earliest() <= now(clock_type::manual)) return 0;
    return best;
}

bool loop::run_timers() {
    for (int c = 0; c < clock_count; ++c) {
        timer_list& list = timers[c];
        if (list.empty()) continue;
        const std::int64_t t_now = now(static_cast<clock_type>(c));
        if (list.earliest() > t_now) continue;
        const std::size_t before = list.size();
        list.expire(t_now, expired_head, expired_tail);
        armed_timers -= before - list.size();
    }
    // Everything expired now is on the FIFO before any callback runs; a callback that re-arms
    // goes back to the heap and is only looked at by the next iteration.
    bool progress = false;
    while (timer* t = expired_head) {
        expired_head = t->expired_next_;
        (expired_head ? expired_head->expired_prev_ : expired_tail) = nullptr;
        t->state_ = timer::state::idle;
        timers_fired.bump();
        progress = true;
        t->cb_();
    }
    return progress;
}

}  // namespace corio::detail
