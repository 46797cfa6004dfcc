// epoll backend: level-triggered readiness from one epoll instance.
//
// Syscalls: epoll_create1(EPOLL_CLOEXEC), epoll_ctl(ADD/MOD/DEL) on every registration change,
// epoll_pwait2 for waits (ns timeouts; Linux 5.11+). Where epoll_pwait2 is missing (ENOSYS) the
// wait falls back to epoll_wait with the timeout rounded *up* to whole milliseconds, so a
// sub-millisecond timer never turns into a loop of zero-timeout waits.
// Invariant: `epoll_event.data.ptr` is the node currently registered for that fd; a replaced
// node's pointer is swapped by EPOLL_CTL_MOD before the old node can be freed.
#include "fdmon/monitor.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <cerrno>
#include <ctime>

namespace corio::fdmon {
namespace {

class epoll_monitor final : public monitor {
public:
    epoll_monitor() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ < 0) throw error(errno, "epoll_create1");
        validates_fds_ = true;  // epoll_ctl(ADD/MOD) fails with EBADF
    }
    ~epoll_monitor() override { close(epfd_); }

    backend_kind kind() const noexcept override { return backend_kind::epoll; }

    int wait(ready_list& ready, std::int64_t timeout_ns) override {
        epoll_event events[max_events];
        int n = epoll_wait_ns(events, timeout_ns);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw error(errno, "epoll_wait");
        }
        for (int i = 0; i < n; ++i) {
            ready.push(static_cast<handler*>(events[i].data.ptr), events[i].events);
        }
        return n;
    }

protected:
    void do_update(handler* old_node, handler* new_node) override {
        const bool was_watched = old_node && old_node->events != 0;
        const bool watch = new_node && new_node->events != 0;
        if (watch) {
            epoll_event ev{};
            ev.events = new_node->events;  // POLLIN/POLLOUT share EPOLLIN/EPOLLOUT's values
            ev.data.ptr = new_node;
            const int op = was_watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
            if (epoll_ctl(epfd_, op, new_node->fd, &ev) < 0) {
                throw error(errno, fmt::format("epoll_ctl({}, fd {})",
                                               op == EPOLL_CTL_ADD ? "ADD" : "MOD", new_node->fd));
            }
        } else if (was_watched) {
            // ENOENT/EBADF: the fd was closed and epoll already dropped it.
            (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, old_node->fd, nullptr);
        }
    }

private:
    static constexpr int max_events = 128;

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
};

}  // namespace

std::unique_ptr<monitor> make_epoll() {
    return std::make_unique<epoll_monitor>();
}

}  // namespace corio::fdmon
