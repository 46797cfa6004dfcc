// Adaptive busy polling (QEMU's poll mode): before an iteration blocks, spin on the userspace
// probes of the handlers most likely to fire next, for a window that adapts to how long the
// loop actually ends up blocking.
//
// Who is polled: the loop's own notifier (`notified`, so a cross-thread BH or notify ends the
// spin without an eventfd write: notify_me is not raised while polling), and the fd handlers
// with a `poll` probe that have fired at least once (the poll list). Nothing is polled while a
// handler without a probe is registered or the backend has events of its own (need_wait).
// Polling mode is entered once (poll_begin callbacks) and left only when the loop really goes
// to sleep (poll_end callbacks plus one last probe, for an event that raced with leaving),
// so back-to-back busy iterations do not flap the notifiers' producers.
// The window policy is the pure function next_poll_ns, unit-tested without a clock.
#include "runtime/detail/loop.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>

namespace corio {

std::int64_t next_poll_ns(std::int64_t poll_ns, std::int64_t block_ns,
                          const poll_params& params) noexcept {
    constexpr std::int64_t base_ns = 4000;
    if (params.max_ns <= 0) return 0;
    if (block_ns <= poll_ns) return poll_ns;  // polling would have caught it: keep the window
    if (block_ns > params.max_ns) return params.shrink > 0 ? poll_ns / params.shrink : 0;
    if (poll_ns < params.max_ns && block_ns < params.max_ns) {
        const std::int64_t grow = params.grow > 0 ? params.grow : 2;
        const std::int64_t grown = poll_ns == 0 ? base_ns : poll_ns * grow;
        return std::min(grown, params.max_ns);
    }
    return poll_ns;
}

void context::set_poll_params(std::int64_t max_ns, std::int64_t grow, std::int64_t shrink) {
    if (max_ns < 0 || grow < 0 || shrink < 0) {
        throw error(EINVAL, fmt::format("set_poll_params({}, {}, {}) on context '{}': negative",
                                        max_ns, grow, shrink, loop_->name));
    }
    loop_->store_poll_params({max_ns, grow, shrink});
    loop_->notify();  // a sleeping loop picks the new window at its next iteration
}

poll_params context::get_poll_params() const noexcept {
    return loop_->load_poll_params();
}

void context::set_event_notifier_poll(event_notifier& notifier, void (*begin)(void*),
                                      void (*end)(void*)) {
    detail::loop& l = *loop_;
    l.assert_home("set_event_notifier_poll");
    detail::fd_node* n = l.fds.find(notifier.fd());
    if (!n) {
        throw error(ENOENT,
                    fmt::format("set_event_notifier_poll(fd {}): not registered", notifier.fd()));
    }
    n->poll_begin = begin;
    n->poll_end = end;
}

}  // namespace corio

namespace corio::detail {

void loop::store_poll_params(const poll_params& p) noexcept {
    poll_max_ns.store(p.max_ns, std::memory_order_relaxed);
    poll_grow.store(p.grow, std::memory_order_relaxed);
    poll_shrink.store(p.shrink, std::memory_order_relaxed);
    poll_ns.store(0, std::memory_order_relaxed);
}

poll_params loop::load_poll_params() const noexcept {
    return {poll_max_ns.load(std::memory_order_relaxed), poll_grow.load(std::memory_order_relaxed),
            poll_shrink.load(std::memory_order_relaxed)};
}

void loop::poll_list_add(fd_node* n) noexcept {
    n->on_poll_list = true;
    n->poll_prev = nullptr;
    n->poll_next = poll_list;
    if (poll_list) poll_list->poll_prev = n;
    poll_list = n;
    if (polling_mode && n->poll_begin) n->poll_begin(n->opaque);
}

void loop::poll_list_remove(fd_node* n) noexcept {
    if (!n->on_poll_list) return;
    (n->poll_prev ? n->poll_prev->poll_next : poll_list) = n->poll_next;
    if (n->poll_next) n->poll_next->poll_prev = n->poll_prev;
    n->on_poll_list = false;
}

bool loop::probe_once() noexcept {
    bool found = notified.load(std::memory_order_acquire);
    for (fd_node* n = poll_list; n; n = n->poll_next) {
        if (n->callbacks.poll(n->opaque)) {
            n->poll_hit = true;
            ready.push(n, 0);
            found = true;
        }
    }
    return found;
}

std::int64_t loop::busy_poll(std::int64_t timeout, std::int64_t start) {
    const std::int64_t window = poll_ns.load(std::memory_order_relaxed);
    const std::int64_t cap = timeout < 0 ? window : std::min(window, timeout);
    if (cap <= 0) return timeout;
    if (!polling_mode) {
        polling_mode = true;
        for (fd_node* n = poll_list; n; n = n->poll_next) {
            if (n->poll_begin) n->poll_begin(n->opaque);
        }
    }
    std::int64_t elapsed = 0;
    do {
        if (probe_once()) {
            poll_hits.bump();
            return 0;
        }
        if (monitor->need_wait()) return 0;  // the backend has something: go and get it
        elapsed = now(clock_type::monotonic) - start;
    } while (elapsed < cap);
    return timeout < 0 ? timeout : std::max<std::int64_t>(timeout - elapsed, 1);
}

bool loop::leave_polling_mode() noexcept {
    polling_mode = false;
    for (fd_node* n = poll_list; n; n = n->poll_next) {
        if (n->poll_end) n->poll_end(n->opaque);
    }
    return probe_once();
}

}  // namespace corio::detail
