// The coroutine entry routine and the aio_co_* primitives (see schedule.hpp).
//
// All resumptions of spawned coroutines go through enter(), which keeps a local to-do list:
// after the entered coroutine suspends or ends, the coroutines it woke on the same context are
// entered next (prepended: depth-first, as QEMU's co_queue_wakeup), so wake chains of any length
// run in constant stack. co_schedule marks the coroutine as scheduled (a second schedule before
// it runs aborts) and queues it with context::post_item, which allocates nothing.
#include <corio/schedule.hpp>
#include <corio/task.hpp>

#include <cstdio>
#include <cstdlib>

namespace corio::detail {
namespace {

// The per-thread state of the coroutine layer, in one initial-exec TLS block (one address
// computation for all of it; read on every resumption).
struct thread_state {
    co_state* running = nullptr;  // the coroutine running on this thread (innermost)
    // The to-do list of the enter() loop active on this thread, and its context: a co_enter for
    // that context from outside any coroutine (an after-suspend action) joins it, not recursing.
    co_state** todo = nullptr;
    context* todo_ctx = nullptr;
};
thread_local thread_state tls __attribute__((tls_model("initial-exec")));

[[noreturn]] void misuse_co(const char* what, const char* detail_text) noexcept {
    std::fprintf(stderr, "corio: %s%s\n", what, detail_text);
    std::abort();
}

void run_scheduled(work_item* item) {
    auto* co = reinterpret_cast<co_state*>(item);  // item is the first member
    context* target = co->target;
    co->scheduled.store(nullptr, std::memory_order_release);
    enter(*target, co);  // with the target passed explicitly, never "the current context" (J5)
}

}  // namespace

co_state* current_coroutine() noexcept {
    return tls.running;
}

co_state* require_coroutine(const char* what) noexcept {
    if (!tls.running) {
        misuse_co(what, "() used outside a coroutine started by corio::spawn or corio::run");
    }
    return tls.running;
}

bool coroutine_stop_requested() noexcept {
    return tls.running && tls.running->stop.stop_requested();
}

void enter(context& ctx, co_state* first) {
    co_state* todo = first;
    first->wake_next = nullptr;
    struct active_loop {
        co_state** saved_todo = tls.todo;
        context* saved_ctx = tls.todo_ctx;
        active_loop(co_state** t, context* c) noexcept {
            tls.todo = t;
            tls.todo_ctx = c;
        }
        ~active_loop() {
            tls.todo = saved_todo;
            tls.todo_ctx = saved_ctx;
        }
    } active(&todo, &ctx);
    while (co_state* co = todo) {
        todo = co->wake_next;
        if (co->running) misuse_co("entering a coroutine that is already running", "");
        if (co->scheduled.load(std::memory_order_acquire)) {
            misuse_co("entering a coroutine that is scheduled by ",
                      co->scheduled.load(std::memory_order_acquire));
        }
        co->ctx.store(&ctx, std::memory_order_release);
        co->running = true;
        co_state* const outer = tls.running;
        tls.running = co;
        co->resume_point.resume();
        tls.running = outer;
        co->running = false;
        // Coroutines it woke run next, before older entries (depth-first).
        if (co->wake_head) {
            co->wake_tail->wake_next = todo;
            todo = co->wake_head;
            co->wake_head = co->wake_tail = nullptr;
        }
        // Each branch is the last use of `co` here: from then on another thread may own it.
        if (co->finished) {
            co->root.destroy();  // frees `co` too: it lives in the root frame
        } else if (context* to = co->reschedule_to) {
            co->reschedule_to = nullptr;
            co_schedule(*to, coroutine(co));  // now that it has suspended here (J6)
        } else if (auto* action = co->after_suspend) {
            co->after_suspend = nullptr;
            action(co->after_suspend_arg, co);
        }
    }
}

namespace {

// co_enter once `ctx` is known to be the current context (QEMU's J3): after the running
// coroutine suspends if there is one on `ctx`, next in the active enter() loop if there is one,
// else now.
void enter_here(context& ctx, co_state* co) {
    if (co_state* self = tls.running) {
        if (self->ctx.load(std::memory_order_relaxed) != &ctx) {
            co_schedule(ctx, coroutine(co));  // a loop nested in a coroutine of another context
            return;
        }
        if (self == co) misuse_co("a coroutine cannot wake or enter itself", "");
        co->wake_next = nullptr;
        (self->wake_tail ? self->wake_tail->wake_next : self->wake_head) = co;
        self->wake_tail = co;
        return;
    }
    if (tls.todo && tls.todo_ctx == &ctx) {
        co->wake_next = *tls.todo;  // runs next, iteratively
        *tls.todo = co;
        return;
    }
    enter(ctx, co);
}

}  // namespace

void wake_local(co_state* co) {
    enter_here(*co->ctx.load(std::memory_order_relaxed), co);
}

}  // namespace corio::detail

namespace corio {

std::stop_token current_stop_token() noexcept {
    detail::co_state* co = detail::current_coroutine();
    return co ? co->stop : std::stop_token{};
}

void co_schedule(context& ctx, coroutine co) {
    detail::co_state* s = co.state();
    const char* expected = nullptr;
    if (!s->scheduled.compare_exchange_strong(expected, "co_schedule", std::memory_order_acq_rel)) {
        detail::misuse_co("co_schedule of a coroutine already scheduled by ", expected);
    }
    s->target = &ctx;
    s->item.run = detail::run_scheduled;
    ctx.post_item(&s->item);
}

void co_enter(context& ctx, coroutine co) {
    if (&ctx != context::current()) {
        co_schedule(ctx, co);
        return;
    }
    detail::enter_here(ctx, co.state());
}

void co_wake(coroutine co) {
    context* home = co.home();
    if (!home) detail::misuse_co("co_wake of a coroutine that never ran", "");
    co_enter(*home, co);
}

}  // namespace corio
