// epoll backend: level-triggered readiness from one epoll instance.
//
// Syscalls: epoll_create1(EPOLL_CLOEXEC), epoll_ctl(ADD/MOD/DEL) on registration changes,
// epoll_pwait2 for waits (ns timeouts; Linux 5.11+). Where epoll_pwait2 is missing (ENOSYS) the
// wait falls back to epoll_wait with the timeout rounded *up* to whole milliseconds, so a
// sub-millisecond timer never turns into a loop of zero-timeout waits.
//
// Lazy removal. A coroutine that waits for an fd registers a handler, is woken, unregisters it
// and most often registers the same fd again before the loop next waits (read, write, read
// again). So removal does not leave the kernel at once: the fd's entry stays in the epoll set,
// "parked" (no node: nothing is reported for it), and a registration of the same fd before the
// next wait turns it back on with one EPOLL_CTL_MOD instead of a DEL and an ADD. Every wait
// first deletes the entries still parked, so a parked fd is never seen by epoll_wait (a
// level-triggered fd nobody drains would make every wait return at once).
//
// A parked entry may outlive its fd: the kernel keys entries by (open file, fd number) and drops
// one only when the file's last descriptor is closed. If the program closes the fd while a
// dup() (or a forked child) keeps the file open, the entry stays, still reporting that file,
// and no fd number reaches it any more (DEL with the reused number finds the new file). So the
// kernel's `data` never holds a pointer: it is the fd number and a generation, bumped by every
// ADD/MOD of that fd, and a report counts only if the fd's slot has a node registered under that
// very generation. MOD on a parked fd whose number now names another file fails with ENOENT
// (the lookup is by the new file), and the registration falls back to ADD. A report of an
// orphaned entry (unknown generation) is dropped, and since it would be reported again by every
// wait while its file stays ready, the epoll set is then rebuilt from the registered slots,
// which leaves the orphans behind with the old instance.
#include "fdmon/monitor.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <ctime>
#include <vector>

namespace corio::fdmon {
namespace {

class epoll_monitor final : public monitor {
public:
    epoll_monitor() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {
        if (epfd_ < 0) throw error(errno, "epoll_create1");
        validates_fds_ = true;  // epoll_ctl(ADD/MOD) fails with EBADF
    }
    ~epoll_monitor() override { close(epfd_); }  // drops parked entries with the rest

    backend_kind kind() const noexcept override { return backend_kind::epoll; }

    int wait(ready_list& ready, std::int64_t timeout_ns) override {
        flush_parked();
        epoll_event events[max_events];
        int n = epoll_wait_ns(events, timeout_ns);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw error(errno, "epoll_wait");
        }
        int reported = 0;
        bool orphans = false;
        for (int i = 0; i < n; ++i) {
            const std::uint64_t data = events[i].data.u64;
            const auto fd = static_cast<std::size_t>(data & 0xffffffffu);
            const auto gen = static_cast<std::uint32_t>(data >> 32);
            if (fd < slots_.size() && slots_[fd].node && slots_[fd].gen == gen) {
                ready.push(slots_[fd].node, events[i].events);
                ++reported;
            } else {
                orphans = true;
            }
        }
        if (orphans) rebuild();
        return reported;
    }

protected:
    void do_update(handler* old_node, handler* new_node) override {
        const bool was_watched = old_node && old_node->events != 0;
        const bool watch = new_node && new_node->events != 0;
        if (watch) {
            slot& s = slot_of(new_node->fd);
            const std::uint32_t gen = s.gen + 1;
            epoll_event ev{};
            ev.events = new_node->events;  // POLLIN/POLLOUT share EPOLLIN/EPOLLOUT's values
            ev.data.u64 = (std::uint64_t{gen} << 32) | static_cast<std::uint32_t>(new_node->fd);
            int op = was_watched || s.parked ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
            int rc = epoll_ctl(epfd_, op, new_node->fd, &ev);
            if (rc < 0 && errno == ENOENT && s.parked) {
                // The parked entry's fd was closed; its number now names another file.
                op = EPOLL_CTL_ADD;
                rc = epoll_ctl(epfd_, op, new_node->fd, &ev);
            }
            if (rc < 0) {
                const int err = errno;
                s.parked = false;  // whatever it was, no number reaches it any more
                throw error(err, fmt::format("epoll_ctl({}, fd {})",
                                             op == EPOLL_CTL_ADD ? "ADD" : "MOD", new_node->fd));
            }
            s.parked = false;
            s.gen = gen;
            s.node = new_node;
        } else if (was_watched) {
            slot& s = slots_[static_cast<std::size_t>(old_node->fd)];
            s.node = nullptr;
            s.parked = true;
            if (!s.listed) {
                s.listed = true;
                parked_.push_back(old_node->fd);
            }
        }
    }

private:
    static constexpr int max_events = 128;

    struct slot {
        handler* node = nullptr;  // the registered node with events, or null
        std::uint32_t gen = 0;    // of the last ADD/MOD for this fd number
        bool parked = false;      // unregistered, entry still in the kernel
        bool listed = false;      // on parked_
    };

    slot& slot_of(int fd) {
        const auto i = static_cast<std::size_t>(fd);
        if (i >= slots_.size()) slots_.resize(std::max(i + 1, slots_.size() * 2));
        return slots_[i];
    }

    void flush_parked() noexcept {
        for (int fd : parked_) {
            slot& s = slots_[static_cast<std::size_t>(fd)];
            s.listed = false;
            if (!s.parked) continue;  // registered again meanwhile
            s.parked = false;
            // EBADF/ENOENT: the fd was closed; its entry is gone, or orphaned (see above).
            (void)epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        }
        parked_.clear();
    }

    // A fresh instance holding the registered entries only. Rare: an fd closed after its
    // handler's removal, while a duplicate of it stayed open, reported as ready.
    void rebuild() {
        const int fresh = epoll_create1(EPOLL_CLOEXEC);
        if (fresh < 0) throw error(errno, "epoll_create1");
        for (std::size_t fd = 0; fd < slots_.size(); ++fd) {
            slot& s = slots_[fd];
            if (!s.node) continue;
            epoll_event ev{};
            ev.events = s.node->events;
            ev.data.u64 = (std::uint64_t{s.gen} << 32) | static_cast<std::uint32_t>(fd);
            if (epoll_ctl(fresh, EPOLL_CTL_ADD, static_cast<int>(fd), &ev) < 0) {
                // A registered fd closed meanwhile: nothing can be reported for it now either.
                continue;
            }
        }
        close(epfd_);
        epfd_ = fresh;
        ++rebuilds_;
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
    std::vector<slot> slots_;  // indexed by fd number
    std::vector<int> parked_;  // fds whose slot was parked since the last wait
    std::size_t rebuilds_ = 0;
};

}  // namespace

std::unique_ptr<monitor> make_epoll() {
    return std::make_unique<epoll_monitor>();
}

}  // namespace corio::fdmon
