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
#include <optional>
#include <stop_token>

namespace corio::detail {

class cancel_point {
public:
    enum : int { waiting, done, cancelling };

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

    /// The operation finished: true if this call must resume the coroutine. Without async undo
    /// any thread may call it, even before arm() has returned (the coroutine locks grant a
    /// waiter from the releasing thread): it then only CASes `state`, and reads `async_` only
    /// after a stop request won, which arm() had registered.
    bool complete() noexcept {
        int expected = waiting;
        if (state_.compare_exchange_strong(expected, done, std::memory_order_acq_rel)) return true;
        if (!async_) return false;  // a stop request won: its item resumes
        op_done_ = true;
        return undo_pending_;  // the item ran first: resume now; else the item will
    }

    /// complete() for an operation that finishes on the home thread after arm() returned (I/O,
    /// timers, fd handlers): no atomic at all when nothing could cancel it.
    bool complete_on_home() noexcept { return !armed_ || complete(); }

    /// After resumption: whether a stop request was processed (with async undo the operation's
    /// own result says whether the cancel was in time). Unregisters the stop callbacks (waiting
    /// for one running concurrently, as std::stop_callback's destructor does).
    bool finish() noexcept {
        if (!armed_) return false;
        stop_.reset();
        inherited_stop_.reset();
        return cancelled_;
    }

    co_state* coroutine_state() const noexcept { return co_; }

private:
    void arm_slow(std::stop_token token, context& home, void* owner, void (*undo)(void* owner),
                  bool async_undo) {
        const bool own = token.stop_possible();
        armed_ = true;
        home_ = &home;
        owner_ = owner;
        undo_ = undo;
        async_ = async_undo;
        item_.self = this;
        item_.item.run = [](work_item* w) {
            cancel_point* self = reinterpret_cast<tagged_item*>(w)->self;
            self->cancelled_ = true;
            if (self->async_) {
                if (!self->op_done_) {
                    self->undo_(self->owner_);
                    self->undo_pending_ = true;
                    return;  // the completion resumes the coroutine
                }
            } else {
                self->undo_(self->owner_);
            }
            wake_local(self->co_);
        };
        // Either callback may run at once (stop already requested); the second one then finds
        // the state taken and does nothing.
        if (own) stop_.emplace(std::move(token), on_stop{this});
        if (co_->stop.stop_possible()) inherited_stop_.emplace(co_->stop, on_stop{this});
    }

    struct on_stop {
        cancel_point* self;
        void operator()() const noexcept {
            int expected = waiting;
            if (self->state_.compare_exchange_strong(expected, cancelling,
                                                     std::memory_order_acq_rel)) {
                self->home_->post_item(&self->item_.item);
            }
        }
    };

    struct tagged_item {  // standard layout: `item` converts back to the struct
        work_item item;
        cancel_point* self = nullptr;
    };

    tagged_item item_;
    std::atomic<int> state_{waiting};
    bool armed_ = false;  // a stop request can reach this operation
    bool cancelled_ = false;
    bool async_ = false;
    bool op_done_ = false;       // async: the completion came while cancelling
    bool undo_pending_ = false;  // async: the item requested cancellation
    context* home_ = nullptr;
    co_state* co_ = nullptr;
    void* owner_ = nullptr;
    void (*undo_)(void*) = nullptr;
    std::optional<std::stop_callback<on_stop>> stop_;
    std::optional<std::stop_callback<on_stop>> inherited_stop_;
};

}  // namespace corio::detail
