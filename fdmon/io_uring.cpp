// io_uring backend: fd readiness through one-shot POLL_ADD requests, and arbitrary requests
// through add_sqe, on one ring owned by the loop's home thread.
//
// Structural invariant: the ring is touched only by the home thread, inside wait(), dispatch(),
// update() and add_sqe(). That is what lets the ring be set up with SINGLE_ISSUER|DEFER_TASKRUN
// (completions are posted only when this thread enters the kernel, so nothing interrupts it),
// falling back flag by flag on older kernels.
//
// user_data tags (low two bits; every pointer here is at least 4-byte aligned):
//   0  a caller's cqe_handler (add_sqe)          1  a poll_op of a registered fd
//   2  internal (POLL_REMOVE, ASYNC_CANCEL)       3  liburing's own (its timeout SQE, -1)
//
// Level-triggered readiness: multishot POLL_ADD is edge-triggered, so each registration keeps
// one one-shot POLL_ADD armed and re-arms it at the next wait() after its completion. A handler
// that leaves data in its fd is therefore reported again by the next iteration.
// A poll_op outlives its registration while its POLL_ADD is in flight: removal or replacement
// detaches it (node = null) and sends POLL_REMOVE; the op is freed by its own completion, so a
// stale CQE never reaches a removed or a new handler.
// Completions are reaped in dispatch() only, each one marked seen before its handler runs, so a
// handler may run a nested iteration, and multishot CQEs reach their handler one by one.
// Destruction cancels every request in flight and reaps until the kernel has finished with all
// of them, however long that takes, calling no handler: after the destructor the kernel touches
// no caller memory. A request the kernel is slow to give back (one that cannot be interrupted)
// is named on stderr after 1 s and every 10 s after that, and asked to cancel again. To name
// them, the requests in flight are kept on two lists (add_sqe handlers, armed polls): a few
// pointer writes per request, no syscall.
#include "fdmon/detail/backends.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <liburing.h>
#include <poll.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace corio::fdmon {
namespace {

constexpr std::uint64_t tag_handler = 0;
constexpr std::uint64_t tag_poll = 1;
constexpr std::uint64_t tag_internal = 2;
constexpr std::uint64_t tag_mask = 3;
// The teardown's ASYNC_CANCEL_ANY: internal, and recognisable (Linux < 5.19 rejects it).
constexpr std::uint64_t cancel_any_data = 4 | tag_internal;

struct poll_op {
    handler* node;  // null once detached: freed when its in-flight POLL_ADD completes
    int fd;
    std::uint32_t events;
    bool armed = false;   // a POLL_ADD is in flight
    bool queued = false;  // on the re-arm list
    bool dead = false;    // the fd is gone (EBADF): not re-armed
    poll_op* rearm_next = nullptr;
    poll_op* armed_prev = nullptr;  // the list of armed polls, while armed
    poll_op* armed_next = nullptr;
};

std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

class io_uring_monitor final : public monitor {
public:
    io_uring_monitor(unsigned entries, unsigned max_batch) : max_batch_(max_batch) {
        // Most capable set first; EINVAL means this kernel lacks a flag: try the next set.
        const unsigned flag_sets[] = {
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
            IORING_SETUP_COOP_TASKRUN,
            0,
        };
        int rc = -EINVAL;
        io_uring_params params{};
        for (unsigned flags : flag_sets) {
            params = {};
            params.flags = flags;
            rc = io_uring_queue_init_params(entries, &ring_, &params);
            if (rc != -EINVAL) break;
        }
        if (rc < 0) throw error(-rc, fmt::format("io_uring_setup({} entries)", entries));
        // Without NODROP (Linux < 5.5) a full CQ ring loses completions: not usable here.
        if (!(params.features & IORING_FEAT_NODROP)) {
            io_uring_queue_exit(&ring_);
            throw error(ENOTSUP, "io_uring without IORING_FEAT_NODROP");
        }
        defer_taskrun_ = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
        // Without DEFER_TASKRUN the kernel posts completions at any time: always look.
        may_have_work_ = !defer_taskrun_;
        // A registered ring fd spares every io_uring_enter the lookup of the ring's file
        // (Linux 5.18+; the ring works the same without it).
        (void)io_uring_register_ring_fd(&ring_);
    }

    ~io_uring_monitor() override {
        drain();
        while (poll_op* op = rearm_head_) {
            rearm_head_ = op->rearm_next;
            delete op;
        }
        io_uring_queue_exit(&ring_);
    }

    backend_kind kind() const noexcept override { return backend_kind::io_uring; }
    bool has_io_uring() const noexcept override { return true; }

    // Polls waiting for re-arm do not count: the loop only skips the kernel (or busy-polls)
    // when every registered fd has a userspace probe or none is registered (user fds force a
    // wait), and the loop's own notifier is probed through `notified`; re-arms go in with the
    // next wait. Counting them would keep a loop that was just woken by its eventfd from ever
    // polling again.
    bool backend_need_wait() const noexcept override {
        return !spilled_.empty() || io_uring_sq_ready(&ring_) > 0 ||
               io_uring_cq_ready(&ring_) > 0 ||
               // With DEFER_TASKRUN a finished request is posted only when we enter the kernel.
               (defer_taskrun_ && inflight_ > 0);
    }

    int wait(ready_list& ready, std::int64_t timeout_ns) override {
        (void)ready;  // readiness is reaped by dispatch(), which the loop calls next
        may_have_work_ = true;
        prepare_submissions();
        int rc;
        if (timeout_ns == 0) {
            rc = defer_taskrun_ || io_uring_cq_has_overflow(&ring_)
                     ? io_uring_submit_and_get_events(&ring_)
                     : io_uring_submit(&ring_);
        } else if (timeout_ns < 0) {
            rc = io_uring_submit_and_wait(&ring_, 1);
        } else {
            __kernel_timespec ts{};
            ts.tv_sec = timeout_ns / 1'000'000'000;
            ts.tv_nsec = timeout_ns % 1'000'000'000;
            io_uring_cqe* cqe = nullptr;
            rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        }
        // EINTR (a signal), ETIME (the timeout), EBUSY/EAGAIN (completion queue full: dispatch()
        // reaps it and the next iteration submits again) all end this wait normally.
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EAGAIN) {
            throw error(-rc, "io_uring_enter");
        }
        return static_cast<int>(io_uring_cq_ready(&ring_));
    }

    bool backend_dispatch(ready_list& ready) override {
        // Completions the kernel kept aside while the CQ ring was full come back first.
        if (io_uring_cq_has_overflow(&ring_)) io_uring_get_events(&ring_);
        bool progress = false;
        for (;;) {
            // The oldest CQE, read straight from the ring (no liburing call when it is empty).
            unsigned head;
            io_uring_cqe* cqe = nullptr;
            io_uring_for_each_cqe(&ring_, head, cqe) break;
            if (!cqe) break;
            const std::uint64_t data = cqe->user_data;
            const std::int32_t res = cqe->res;
            const std::uint32_t flags = cqe->flags;
            io_uring_cqe_seen(&ring_, cqe);  // before any callback: a nested reap skips it
            switch (data & tag_mask) {
                case tag_handler: {
                    auto* h = reinterpret_cast<cqe_handler*>(data);
                    if (!(flags & IORING_CQE_F_MORE)) forget(h);
                    h->res = res;
                    h->flags = flags;
                    progress = true;
                    h->cb(h);
                    break;
                }
                case tag_poll:
                    poll_completed(reinterpret_cast<poll_op*>(data & ~tag_mask), res, ready);
                    break;
                default:
                    break;
            }
        }
        may_have_work_ = !defer_taskrun_ || backend_need_wait();
        return progress;
    }

    void add_sqe(sqe_prep_fn prep, void* opaque, cqe_handler* h) override {
        const std::uint64_t data = reinterpret_cast<std::uint64_t>(h) | tag_handler;
        track(h);
        may_have_work_ = true;
        io_uring_sqe* sqe = spilled_.empty() ? io_uring_get_sqe(&ring_) : nullptr;
        if (!sqe) [[unlikely]] {
            add_sqe_slow(prep, opaque, data);
            return;
        }
        prep(sqe, opaque);
        h->opcode = sqe->opcode;
        io_uring_sqe_set_data64(sqe, data);
        if (max_batch_ != 0 && io_uring_sq_ready(&ring_) >= max_batch_) io_uring_submit(&ring_);
    }

    void cancel_sqe(cqe_handler* h) override {
        push_internal([h](io_uring_sqe* sqe) {
            io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(h) | tag_handler, 0);
        });
    }

protected:
    void do_update(handler* old_node, handler* new_node) override {
        if (new_node) check_fd(new_node->fd);  // a POLL_ADD reports a bad fd only later
        auto* old_op = old_node ? static_cast<poll_op*>(old_node->backend) : nullptr;
        if (old_op && new_node && new_node->events == old_op->events) {
            old_op->node = new_node;  // same fd, same mask: the armed poll carries over
            new_node->backend = old_op;
            return;
        }
        if (new_node && new_node->events != 0) {
            auto* op = new poll_op{new_node, new_node->fd, new_node->events};
            new_node->backend = op;
            queue_rearm(op);
        }
        if (old_op) detach(old_op);
    }

private:
    // add_sqe when the SQ ring is full or entries are already waiting behind a refusal.
    [[gnu::noinline]] void add_sqe_slow(sqe_prep_fn prep, void* opaque, std::uint64_t data) {
        io_uring_sqe* sqe = get_sqe();
        io_uring_sqe spill;
        if (!sqe) {
            std::memset(&spill, 0, sizeof spill);
            sqe = &spill;
        }
        prep(sqe, opaque);
        reinterpret_cast<cqe_handler*>(data)->opcode = sqe->opcode;
        io_uring_sqe_set_data64(sqe, data);
        if (sqe == &spill) spilled_.push_back(spill);  // submitted at the next wait
    }

    io_uring_sqe* get_sqe() noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (!sqe && spilled_.empty()) {
            io_uring_submit(&ring_);  // SQ ring full: hand what is queued to the kernel
            sqe = io_uring_get_sqe(&ring_);
        }
        return spilled_.empty() ? sqe : nullptr;  // keep submission order behind a spill
    }

    void queue_rearm(poll_op* op) noexcept {
        if (op->queued) return;
        op->queued = true;
        op->rearm_next = rearm_head_;
        rearm_head_ = op;
    }

    // The add_sqe requests in flight (inflight_ counts them).
    void track(cqe_handler* h) noexcept {
        ++inflight_;
        h->prev = nullptr;
        h->next = inflight_head_;
        if (inflight_head_) inflight_head_->prev = h;
        inflight_head_ = h;
    }
    void forget(cqe_handler* h) noexcept {
        --inflight_;
        (h->prev ? h->prev->next : inflight_head_) = h->next;
        if (h->next) h->next->prev = h->prev;
    }

    // The armed polls (armed_polls_ counts them).
    void mark_armed(poll_op* op) noexcept {
        op->armed = true;
        ++armed_polls_;
        op->armed_prev = nullptr;
        op->armed_next = armed_head_;
        if (armed_head_) armed_head_->armed_prev = op;
        armed_head_ = op;
    }
    void mark_disarmed(poll_op* op) noexcept {
        op->armed = false;
        --armed_polls_;
        (op->armed_prev ? op->armed_prev->armed_next : armed_head_) = op->armed_next;
        if (op->armed_next) op->armed_next->armed_prev = op->armed_prev;
    }

    // Queues a request whose completion nobody waits for (tagged internal).
    template <class Prep>
    void push_internal(Prep&& prep) {
        may_have_work_ = true;
        io_uring_sqe* sqe = get_sqe();
        io_uring_sqe spill;
        if (!sqe) {
            std::memset(&spill, 0, sizeof spill);
            sqe = &spill;
        }
        prep(sqe);
        io_uring_sqe_set_data64(sqe, tag_internal);
        if (sqe == &spill) spilled_.push_back(spill);
    }

    void detach(poll_op* op) {
        op->node = nullptr;
        if (op->armed) {
            push_internal([op](io_uring_sqe* sqe) {
                io_uring_prep_poll_remove(sqe, reinterpret_cast<std::uint64_t>(op) | tag_poll);
            });
        } else if (!op->queued) {
            delete op;
        }  // else: freed when the re-arm list is processed
    }

    void poll_completed(poll_op* op, std::int32_t res, ready_list& ready) {
        mark_disarmed(op);
        if (!op->node) {
            if (!op->queued) delete op;
            return;
        }
        if (res == -ECANCELED) {  // cancelled without being detached (should not happen)
            queue_rearm(op);
            return;
        }
        std::uint32_t revents = res >= 0 ? static_cast<std::uint32_t>(res) : POLLERR;
        if (res == -EBADF) {
            op->dead = true;  // closed while registered: report once, never re-arm
            revents = POLLERR | POLLHUP;
        }
        ready.push(op->node, revents);
        if (!op->dead) queue_rearm(op);
    }

    // Turns the re-arm list and spilled entries into SQEs; called before every kernel entry.
    void prepare_submissions() {
        while (!spilled_.empty()) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
            if (!sqe) {
                if (io_uring_submit(&ring_) <= 0) return;  // still full: next time
                continue;
            }
            *sqe = spilled_.front();
            spilled_.erase(spilled_.begin());
        }
        while (poll_op* op = rearm_head_) {
            if (op->node) {
                io_uring_sqe* sqe = get_sqe();
                if (!sqe) return;  // SQ and kernel full: the rest waits for the next wait()
                io_uring_prep_poll_add(sqe, op->fd, op->events);
                io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uint64_t>(op) | tag_poll);
                mark_armed(op);
            }
            rearm_head_ = op->rearm_next;
            op->queued = false;
            if (!op->node && !op->armed) delete op;
        }
    }

    // Cancels every request in flight and reaps until the kernel is done with all of them,
    // however long it takes (see the file comment). Every node is detached by now: the loop
    // removed its handlers before destroying the backend.
    void drain() noexcept {
        for (const io_uring_sqe& sqe : spilled_) {  // never seen by the kernel: just forgotten
            if ((sqe.user_data & tag_mask) == tag_handler) {
                forget(reinterpret_cast<cqe_handler*>(sqe.user_data));
            }
        }
        spilled_.clear();
        if (inflight_ == 0 && armed_polls_ == 0) return;
        push_cancel(cancel_any_data, IORING_ASYNC_CANCEL_ANY);
        const std::int64_t start = monotonic_ns();
        std::int64_t report_at = start + 1'000'000'000;
        while (inflight_ > 0 || armed_polls_ > 0) {
            io_uring_submit(&ring_);
            const std::int64_t left = report_at - monotonic_ns();
            io_uring_cqe* cqe = nullptr;
            int rc = -ETIME;
            if (left > 0) {
                __kernel_timespec ts{left / 1'000'000'000, left % 1'000'000'000};
                rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
            }
            if (reap_at_teardown()) cancel_each();  // this kernel has no ASYNC_CANCEL_ANY
            if (rc == -ETIME && monotonic_ns() >= report_at &&
                (inflight_ > 0 || armed_polls_ > 0)) {
                report_stuck((monotonic_ns() - start) / 1'000'000'000);
                cancel_each();
                report_at = monotonic_ns() + 10'000'000'000;
            }
        }
    }

    // Reaps every CQE there is, calling no handler; true if ASYNC_CANCEL_ANY was refused.
    bool reap_at_teardown() noexcept {
        bool no_cancel_any = false;
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
            const std::uint64_t data = cqe->user_data;
            const std::int32_t res = cqe->res;
            const std::uint32_t flags = cqe->flags;
            io_uring_cqe_seen(&ring_, cqe);
            if ((data & tag_mask) == tag_handler && !(flags & IORING_CQE_F_MORE)) {
                forget(reinterpret_cast<cqe_handler*>(data));
            } else if ((data & tag_mask) == tag_poll) {
                auto* op = reinterpret_cast<poll_op*>(data & ~tag_mask);
                mark_disarmed(op);
                if (!op->queued) delete op;
            } else if (data == cancel_any_data && res == -EINVAL) {
                no_cancel_any = true;
            }
        }
        return no_cancel_any;
    }

    // One ASYNC_CANCEL per request still in flight.
    void cancel_each() noexcept {
        for (cqe_handler* h = inflight_head_; h; h = h->next) {
            push_cancel(reinterpret_cast<std::uint64_t>(h) | tag_handler, 0);
        }
        for (poll_op* op = armed_head_; op; op = op->armed_next) {
            push_cancel(reinterpret_cast<std::uint64_t>(op) | tag_poll, 0);
        }
    }

    void push_cancel(std::uint64_t target, unsigned flags) noexcept {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        while (!sqe) {  // SQ ring full: hand it over, and make room in the CQ ring
            if (io_uring_submit(&ring_) < 0) reap_at_teardown();
            sqe = io_uring_get_sqe(&ring_);
        }
        io_uring_prep_cancel64(sqe, target, static_cast<int>(flags));
        io_uring_sqe_set_data64(sqe, target == cancel_any_data ? target : tag_internal);
    }

    void report_stuck(std::int64_t seconds) const noexcept {
        std::fprintf(stderr,
                     "corio: io_uring teardown: after %llds still waiting for the kernel to finish "
                     "%zu request(s) and %zu fd poll(s):",
                     static_cast<long long>(seconds), inflight_, armed_polls_);
        int shown = 0;
        for (const cqe_handler* h = inflight_head_; h && shown < 8; h = h->next, ++shown) {
            std::fprintf(stderr, " [cqe_handler %p, opcode %u]", static_cast<const void*>(h),
                         static_cast<unsigned>(h->opcode));
        }
        for (const poll_op* op = armed_head_; op && shown < 8; op = op->armed_next, ++shown) {
            std::fprintf(stderr, " [POLL_ADD fd %d]", op->fd);
        }
        const std::size_t total = inflight_ + armed_polls_;
        if (total > static_cast<std::size_t>(shown)) {
            std::fprintf(stderr, " and %zu more", total - static_cast<std::size_t>(shown));
        }
        std::fputc('\n', stderr);
    }

    io_uring ring_{};
    bool defer_taskrun_ = false;
    const unsigned max_batch_;
    std::size_t inflight_ = 0;              // add_sqe requests whose last CQE has not been reaped
    std::size_t armed_polls_ = 0;           // POLL_ADDs in flight
    cqe_handler* inflight_head_ = nullptr;  // the add_sqe requests in flight
    poll_op* armed_head_ = nullptr;         // the polls in flight
    poll_op* rearm_head_ = nullptr;
    std::vector<io_uring_sqe> spilled_;  // prepared while the kernel accepted nothing
};

}  // namespace

std::unique_ptr<monitor> make_io_uring(unsigned entries, unsigned max_batch) {
    return std::make_unique<io_uring_monitor>(entries, max_batch);
}

}  // namespace corio::fdmon
