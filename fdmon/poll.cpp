// poll backend: ppoll(2) over an array rebuilt only when the registration changed.
//
// The simplest backend and the last resort: no kernel object, ns timeouts through ppoll's
// timespec, O(n) per wait. `nodes_` is the registration set in insertion order; `fds_` mirrors
// the nodes that have events, rebuilt lazily. A nested wait (from a callback) may rebuild the
// arrays: the outer wait has finished reading them by then.
#include "fdmon/detail/backends.hpp"

#include <corio/error.hpp>

#include <poll.h>
#include <algorithm>
#include <cerrno>
#include <ctime>
#include <vector>

namespace corio::fdmon {
namespace {

class poll_monitor final : public monitor {
public:
    backend_kind kind() const noexcept override { return backend_kind::poll; }

    int wait(ready_list& ready, std::int64_t timeout_ns) override {
        if (dirty_) rebuild();
        timespec ts{};
        timespec* tsp = nullptr;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1'000'000'000;
            ts.tv_nsec = timeout_ns % 1'000'000'000;
            tsp = &ts;
        }
        int n = ppoll(fds_.data(), fds_.size(), tsp, nullptr);
        if (n < 0) {
            if (errno == EINTR) return 0;
            throw error(errno, "ppoll");
        }
        int reported = 0;
        for (std::size_t i = 0; i < fds_.size() && reported < n; ++i) {
            if (fds_[i].revents == 0) continue;
            // POLLNVAL: the fd was closed while registered; report it as an error condition.
            std::uint32_t revents = static_cast<std::uint16_t>(fds_[i].revents);
            if (revents & POLLNVAL) revents |= POLLERR;
            ready.push(watched_[i], revents);
            ++reported;
        }
        return reported;
    }

protected:
    void do_update(handler* old_node, handler* new_node) override {
        if (new_node) check_fd(new_node->fd);
        if (old_node && new_node) {
            *std::find(nodes_.begin(), nodes_.end(), old_node) = new_node;
        } else if (new_node) {
            nodes_.push_back(new_node);
        } else if (old_node) {
            nodes_.erase(std::find(nodes_.begin(), nodes_.end(), old_node));
        }
        dirty_ = true;
    }

private:
    void rebuild() {
        fds_.clear();
        watched_.clear();
        for (handler* h : nodes_) {
            if (h->events == 0) continue;
            fds_.push_back(pollfd{h->fd, static_cast<short>(h->events), 0});
            watched_.push_back(h);
        }
        dirty_ = false;
    }

    std::vector<handler*> nodes_;
    std::vector<pollfd> fds_;
    std::vector<handler*> watched_;
    bool dirty_ = false;
};

}  // namespace

std::unique_ptr<monitor> make_poll() {
    return std::make_unique<poll_monitor>();
}

}  // namespace corio::fdmon
