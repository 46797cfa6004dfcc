// Cancellation of a suspended operation through std::stop_token, shared by corio's awaitables.
//
// An operation completes on its context's home thread; a stop request may come from any
// thread. Exactly one of the two resumes the coroutine, decided by one CAS on `state`:
//  - completion (home thread): waiting -> done, then resume;
//  - stop request (any thread, inside std::stop_callback): waiting -> cancelling, then post a
//    work item to the home context, which undoes the operation (timer cancel, handler removal)
//    and resumes the coroutine with ECANCELED. The coroutine is never resumed before that item
//    has run, so the item never outlives the awaiter.
// Asynchronous undo (io_uring: ASYNC_CANCEL) cannot resume at once: the request's last CQE is
// still to come and must find its handler alive. Then the item only starts the undo, and
// whichever of {item, completion} comes second resumes the coroutine (both run on the home
// thread); the completion's own result tells whether the cancel was in time.
#pragma once

#include <corio/context.hpp>
#include <corio/schedule.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <stop_token>

namespace corio::detail {

class cancel_point {
public:
    enum : int { waiting, done, cancelling };

    cancel_point() noexcept {}  // the armed state is constructed by arm(), when needed
    ~cancel_point() {
        if (armed_) std::destroy_at(&a_);
    }
    cancel_point(const cancel_point&) = delete;
    cancel_point& operator=(const cancel_point&) = delete;

    /// Arms cancellation for the coroutine `co` suspended on `home`; `undo(owner)` runs on the
    /// home thread when a stop request wins. May run the stop callback at once (stop already
    /// requested): the work item then runs after the coroutine has suspended.
    /// `async_undo`: the undo only requests cancellation; the operation's completion still comes
    /// (through complete()) and the coroutine resumes after both.
    /// The coroutine's own stop token (co_state::stop) cancels the operation as `token` does.
    void arm(std::stop_token&& token, context& home, co_state* co, void* owner,
             void (*undo)(void* owner), bool async_undo = false) {
        co_ = co;
        // Nothing can cancel: completion is all there is (the common case, kept inline).
        if (!token.stop_possible() && !co->stop.stop_possible()) return;
        arm_slow(std::move(token), home, owner, undo, async_undo);
    }

    /// For an operation nothing may cancel: only records the coroutine to resume.
    void bind(co_state* co) noexcept { co_ = co; }

    /// The operation finished: true if this call must resume the coroutine. Without async undo
    /// any thread may call it, even before arm() has returned (the coroutine locks grant a
    /// waiter from the releasing thread): it then only CASes `state`, and reads the armed state
    /// only after a stop request won, which arm() had registered.
    bool complete() noexcept {
        int expected = waiting;
        if (state_.compare_exchange_strong(expected, done, std::memory_order_acq_rel)) return true;
        if (!a_.async) return false;  // a stop request won: its item resumes
        a_.op_done = true;
        return a_.undo_pending;  // the item ran first: resume now; else the item will
    }

    /// complete() for an operation that finishes on the home thread after arm() returned (I/O,
    /// timers, fd handlers): no atomic at all when nothing could cancel it.
    bool complete_on_home() noexcept { return !armed_ || complete(); }

    /// After resumption: whether a stop request was processed (with async undo the operation's
    /// own result says whether the cancel was in time). Unregisters the stop callbacks (waiting
    /// for one running concurrently, as std::stop_callback's destructor does).
    bool finish() noexcept {
        if (!armed_) return false;
        a_.stop.reset();
        a_.inherited_stop.reset();
        return a_.cancelled;
    }

    co_state* coroutine_state() const noexcept { return co_; }

private:
    struct on_stop {
        cancel_point* self;
        void operator()() const noexcept {
            int expected = waiting;
            if (self->state_.compare_exchange_strong(expected, cancelling,
                                                     std::memory_order_acq_rel)) {
                self->a_.home->post_item(&self->a_.item.item);
            }
        }
    };

    struct tagged_item {  // standard layout: `item` converts back to the struct
        work_item item;
        cancel_point* self = nullptr;
    };

    // What only a cancellable operation needs (most are not: no stop token can fire), kept
    // out of the awaiter's initialization until arm() finds it needed.
    struct armed_state {
        tagged_item item;
        context* home = nullptr;
        void* owner = nullptr;
        void (*undo)(void*) = nullptr;
        bool cancelled = false;
        bool async = false;
        bool op_done = false;       // async: the completion came while cancelling
        bool undo_pending = false;  // async: the item requested cancellation
        std::optional<std::stop_callback<on_stop>> stop;
        std::optional<std::stop_callback<on_stop>> inherited_stop;
    };

    // Kept out of line so that arm() itself inlines into every awaiter.
    [[gnu::noinline]] void arm_slow(std::stop_token token, context& home, void* owner,
                                    void (*undo)(void* owner), bool async_undo) {
        std::construct_at(&a_);
        armed_ = true;
        a_.home = &home;
        a_.owner = owner;
        a_.undo = undo;
        a_.async = async_undo;
        a_.item.self = this;
        a_.item.item.run = [](work_item* w) {
            cancel_point* self = reinterpret_cast<tagged_item*>(w)->self;
            armed_state& a = self->a_;
            a.cancelled = true;
            if (a.async) {
                if (!a.op_done) {
                    a.undo(a.owner);
                    a.undo_pending = true;
                    return;  // the completion resumes the coroutine
                }
            } else {
                a.undo(a.owner);
            }
            wake_local(self->co_);
        };
        // Either callback may run at once (stop already requested); the second one then finds
        // the state taken and does nothing.
        if (token.stop_possible()) a_.stop.emplace(std::move(token), on_stop{this});
        if (co_->stop.stop_possible()) a_.inherited_stop.emplace(co_->stop, on_stop{this});
    }

    co_state* co_ = nullptr;
    std::atomic<int> state_{waiting};
    bool armed_ = false;  // a_ is constructed: a stop request can reach this operation
    union {
        armed_state a_;
    };
};

}  // namespace corio::detail
