// epoll backend: level-triggered readiness from one epoll instance.
//
// Syscalls: epoll_create1(EPOLL_CLOEXEC), epoll_ctl(ADD/MOD/DEL) on registration changes,
// epoll_pwait2 for waits (ns timeouts; Linux 5.11+). Where epoll_pwait2 is missing (ENOSYS) the
// wait falls back to epoll_wait with the timeout rounded *up* to whole milliseconds, so a
// sub-millisecond timer never turns into a loop of zero-timeout waits.
// Invariant: `epoll_event.data.ptr` of an entry that can report is the node currently
// registered for that fd; a replaced node's pointer is swapped by EPOLL_CTL_MOD before the old
// node can be freed.
//
// One-shot waits (handler::once: a coroutine's I/O wait registers, is woken, removes its handler
// and most often registers the same fd again soon after). They are armed EPOLLONESHOT: once
// reported, the kernel entry is disabled (it reports nothing more, so its stale data.ptr is never
// read), and removing the handler then costs no syscall: the fd is remembered as "dormant". Its
// next registration re-enables the entry with one MOD instead of an ADD after a DEL (an ADD
// allocates and hooks a kernel entry, a DEL frees it). No syscall is ever deferred past the
// handler's life: the fd number is touched only while a handler for it is registered, that is
// while its owner uses it. If the fd was closed in between, the kernel dropped the entry (or,
// with a dup still open, keeps it disabled under the old file): the MOD fails with ENOENT and the
// registration falls back to ADD. A one-shot node that is still registered when the next wait
// starts is re-enabled (one MOD) by that wait, so it stays level-triggered like any other node;
// the reported one-shot nodes are remembered in `reported_` until then (each node's `backend`
// points at its slot, which its removal clears).
#include "fdmon/detail/backends.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <vector>

namespace corio::fdmon {
namespace {

class epoll_monitor final : public monitor {
public:
    epoll_monitor() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ < 0) throw error(errno, "epoll_create1");
    }
    ~epoll_monitor() override { close(epfd_); }

    backend_kind kind() const noexcept override { return backend_kind::epoll; }

    int wait(ready_list& ready, std::int64_t timeout_ns) override {
        if (reported_count_ != 0) rearm_reported();
        epoll_event events[max_events];
        int n = epoll_wait_ns(events, timeout_ns);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw error(errno, "epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            auto* h = static_cast<handler*>(events[i].data.ptr);
            if (h->once) {  // its entry is disabled now
                reported_[reported_count_] = h;
                h->backend = &reported_[reported_count_++];
            }
            ready.push(h, events[i].events);
        }
        return n;
    }

protected:
    void do_update(handler* old_node, handler* new_node) override {
        const bool was_watched = old_node && old_node->events != 0;
        const bool was_reported = old_node && old_node->backend != nullptr;  // entry disabled
        const bool watch = new_node && new_node->events != 0;
        const int fd = new_node ? new_node->fd : old_node->fd;
        if (watch) {
            epoll_event ev = event_of(new_node);
            int op = was_watched || is_dormant(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
            int r = epoll_ctl(epfd_, op, fd, &ev);
            if (r < 0 && op == EPOLL_CTL_MOD && errno == ENOENT && !was_watched) {
                op = EPOLL_CTL_ADD;  // the dormant entry went with a close: a new file now
                r = epoll_ctl(epfd_, op, fd, &ev);
            } else if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST) {
                // An entry left by a close while a dup kept the file open (DEL could not reach
                // it), and the number names that file again: take the entry over.
                op = EPOLL_CTL_MOD;
                r = epoll_ctl(epfd_, op, fd, &ev);
            }
            if (r < 0) {
                throw error(errno, fmt::format("epoll_ctl({}, fd {})",
                                               op == EPOLL_CTL_ADD ? "ADD" : "MOD", fd));
            }
            set_dormant(fd, false);
        } else if (new_node) {
            check_fd(fd);  // no epoll_ctl tells
        }
        if (was_reported) {
            *static_cast<handler**>(old_node->backend) = nullptr;  // not re-armed by the next wait
            old_node->backend = nullptr;
        }
        if (watch || !was_watched) return;
        if (was_reported) {
            set_dormant(fd, true);  // reported and disabled: nothing to tell the kernel
        } else {
            // ENOENT/EBADF: the fd was closed and epoll already dropped it.
            (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        }
    }

private:
    static constexpr int max_events = 128;

    static epoll_event event_of(handler* h) noexcept {
        epoll_event ev{};
        // POLLIN/POLLOUT share EPOLLIN/EPOLLOUT's values.
        ev.events = h->events | (h->once ? EPOLLONESHOT : 0U);
        ev.data.ptr = h;
        return ev;
    }
    // One-shot nodes reported by the last wait and still registered: enabled again.
    void rearm_reported() noexcept {
        for (std::size_t i = 0; i < reported_count_; ++i) {
            handler* h = reported_[i];
            if (!h) continue;
            h->backend = nullptr;
            epoll_event ev = event_of(h);
            // ENOENT/EBADF: closed by its callback; its owner removes the handler with it.
            (void)epoll_ctl(epfd_, EPOLL_CTL_MOD, h->fd, &ev);
        }
        reported_count_ = 0;
    }

    bool is_dormant(int fd) const noexcept {
        return static_cast<std::size_t>(fd) < dormant_.size() && dormant_[fd] != 0;
    }
    void set_dormant(int fd, bool on) {
        const auto i = static_cast<std::size_t>(fd);
        if (i >= dormant_.size()) {
            if (!on) return;
            dormant_.resize(std::max(i + 1, 2 * dormant_.size()), 0);
        }
        dormant_[i] = on ? 1 : 0;
    }

    int epoll_wait_ns(epoll_event* events, std::int64_t timeout_ns) {
        if (have_pwait2_) {
            timespec ts{};
            timespec* tsp = nullptr;
            if (timeout_ns >= 0) {
                ts.tv_sec = timeout_ns / 1'000'000'000;
                ts.tv_nsec = timeout_ns % 1'000'000'000;
                tsp = &ts;
            }
            int n = epoll_pwait2(epfd_, events, max_events, tsp, nullptr);
            if (n >= 0 || errno != ENOSYS) return n;
            have_pwait2_ = false;
        }
        int ms = -1;
        if (timeout_ns >= 0) {
            const std::int64_t up = (timeout_ns + 999'999) / 1'000'000;
            ms = up > 0x7fffffff ? 0x7fffffff : static_cast<int>(up);
        }
        return epoll_wait(epfd_, events, max_events, ms);
    }

    int epfd_;
    bool have_pwait2_ = true;
    std::vector<std::uint8_t> dormant_;   // by fd: a disabled one-shot entry may be in the set
    handler* reported_[max_events] = {};  // see the file comment; null: removed since
    std::size_t reported_count_ = 0;
};

}  // namespace

std::unique_ptr<monitor> make_epoll() {
    return std::make_unique<epoll_monitor>();
}

}  // namespace corio::fdmon
