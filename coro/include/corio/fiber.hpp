// corio fibers — stackful coroutines on Boost.Context that are ordinary corio coroutines.
//
// A fiber runs a plain function on its own stack; anywhere in its call chain, however deep,
// `corio::await(x)` waits for any awaitable as `co_await x` would in a task, and `fiber_yield()`
// parks it until someone wakes it (QEMU's qemu_coroutine_yield). QEMU's coroutine API maps as:
// create + enter = spawn_fiber, yield = fiber_yield, self = current_fiber, in_coroutine =
// in_fiber, enter / aio_co_wake / aio_co_schedule = co_enter / co_wake / co_schedule.
//
// Structure: each fiber is driven by a stackless task (its *driver*) that resumes the fiber's
// stack and, when the fiber awaits, switches back to the driver with a type-erased request that
// the driver `co_await`s on the fiber's behalf (the result or exception is stored in the
// request, on the fiber's stack), then switches back into the fiber. So a fiber *is* the corio
// coroutine its driver belongs to: co_state, co_wake, co_schedule, reschedule_self, suspend,
// cancellation and join handles work unchanged, and a fiber moves between contexts (and threads)
// exactly as a task does. The switch itself is Boost.Context's fcontext, annotated for
// AddressSanitizer and ThreadSanitizer (see fiber.cpp).
//
// Stacks are mmap'ed with a PROT_NONE guard page below them (an overflow is a SIGSEGV, never
// silent corruption) and recycled through a bounded per-thread pool.
//
// Caveat shared by every stackful coroutine that can change threads: a fiber that is resumed on
// another thread (co_schedule, reschedule_self, a wake from another context) must not rely on
// per-thread values computed before an await() or fiber_yield() in the same function. The
// compiler may keep the address of a thread_local, or the result of a function glibc declares
// const — errno's __errno_location, pthread_self behind std::this_thread::get_id — across the
// call. Read them after the call through a function the compiler cannot see into.
//
// Fibers exist only in a build with Boost.Context (meson -Dfibers, CORIO_HAS_FIBERS in
// corio/config.hpp); a build without them installs no fiber.hpp, and this one refuses to compile.
#pragma once

#include <corio/config.hpp>

#if !CORIO_HAS_FIBERS
#error "corio was built without fibers (Boost.Context, meson -Dfibers): no corio/fiber.hpp"
#endif

#include <corio/schedule.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio {

/// How a fiber's stack is set up.
struct fiber_options {
    /// Usable stack bytes, rounded up to whole pages; one guard page is added below. At least
    /// 16 KiB (smaller aborts). The default, 256 KiB, leaves room for a few thousand ordinary
    /// frames (sanitizer builds use several times more stack per frame). Address space is
    /// reserved, not committed: only the pages a fiber touches cost memory.
    std::size_t stack_size = 256 * 1024;
};

namespace detail {

/// What a fiber hands to its driver to await on its behalf. Lives on the fiber's stack.
struct await_request {
    /// Calls the awaiter's await_suspend with the driver's handle; returns the coroutine to
    /// transfer to (noop_coroutine(): the driver stays suspended; the driver itself: go on).
    std::coroutine_handle<> (*suspend)(await_request* self, std::coroutine_handle<> driver);
    /// Calls await_resume and stores its result in the request.
    void (*resume)(await_request* self);
    /// Thrown by await_suspend or await_resume, rethrown on the fiber.
    std::exception_ptr error;
};

/// The part of a fiber that does not depend on its function (fiber.cpp). It lives in the
/// driver's frame; its stack is taken at the first resume() and given back when the function
/// returns. The layout does not depend on sanitizer flags: every TU sees the same object.
class fiber_base {
public:
    fiber_base(void (*body)(fiber_base* self), const fiber_options& options,
               const char* name) noexcept
        : body_(body), stack_size_(options.stack_size), name_(name) {}
    /// A fiber still suspended in await()/fiber_yield() is unwound: its pending call throws an
    /// internal exception (not a std::exception) so that the destructors on its stack run.
    ~fiber_base();
    fiber_base(const fiber_base&) = delete;
    fiber_base& operator=(const fiber_base&) = delete;

    /// Driver side: switches into the fiber (starting it, and taking a stack, the first time)
    /// until it awaits or yields — returns its request — or its function returns: then returns
    /// null and the stack is released. Throws corio::error if no stack can be mapped.
    await_request* resume();
    /// Fiber side: hands `request` to the driver and switches to it; returns once the driver has
    /// completed the request (or rethrows what the awaitable threw).
    void await(await_request& request);
    /// After resume() returned null: rethrows what the function threw, if it did.
    void rethrow_if_failed() const {
        if (error_) std::rethrow_exception(error_);
    }

    // The rest belongs to fiber.cpp.
    void start();
    void switch_to_caller(bool final);
    void release_stack() noexcept;

    void (*const body_)(fiber_base* self);
    const std::size_t stack_size_;
    const char* const name_;
    std::exception_ptr error_;     // thrown by the function
    void* fctx_ = nullptr;         // the fiber's saved context while it is switched out
    void* caller_fctx_ = nullptr;  // the driver's saved context while the fiber runs
    void* stack_base_ = nullptr;  // the mapping (guard page first); null before start and after end
    std::size_t mapping_size_ = 0;
    await_request* request_ = nullptr;
    co_state* co_ = nullptr;           // the coroutine the driver ran in at the last resume()
    void* eh_caught_ = nullptr;        // the fiber's C++ exception-handling globals while it is
    unsigned eh_uncaught_ = 0;         // switched out (see fiber.cpp)
    void* asan_fake_stack_ = nullptr;  // AddressSanitizer: the fiber side's fake stack
    const void* caller_stack_bottom_ = nullptr;  // ASan: the stack resume() was called on
    std::size_t caller_stack_size_ = 0;
    void* tsan_fiber_ = nullptr;   // ThreadSanitizer: the fiber's own context
    void* tsan_caller_ = nullptr;  // TSan: the context resume() was called from
    bool finished_ = false;
    bool unwinding_ = false;
};

/// The running fiber, aborting with `what` if the caller is not running on a fiber (or is a
/// stackless coroutine entered from inside one).
fiber_base* require_fiber(const char* what) noexcept;
/// Aborts if `options` are invalid.
void check_fiber_options(const fiber_options& options) noexcept;
/// How many stacks the calling thread has mapped so far (the others came from its pool).
std::uint64_t fiber_stacks_mapped() noexcept;

/// Where an await_resume result waits on the fiber's stack until await() returns it.
template <class R>
struct await_result {
    std::optional<R> value;
    template <class Awaiter>
    void set(Awaiter& awaiter) {
        value.emplace(awaiter.await_resume());
    }
    R take() { return std::move(*value); }
};
template <class R>
requires std::is_reference_v<R>
struct await_result<R> {
    std::remove_reference_t<R>* pointer = nullptr;
    template <class Awaiter>
    void set(Awaiter& awaiter) {
        R named = awaiter.await_resume();  // an lvalue even when R is an rvalue reference
        pointer = std::addressof(named);
    }
    R take() { return static_cast<R>(*pointer); }
};
template <>
struct await_result<void> {
    template <class Awaiter>
    void set(Awaiter& awaiter) {
        awaiter.await_resume();
    }
    void take() const noexcept {}
};

/// The awaiter `co_await x` would use: x.operator co_await(), operator co_await(x), or x itself
/// (returned as a reference then, so it stays where the caller's full-expression keeps it).
template <class Awaitable>
decltype(auto) get_awaiter(Awaitable&& awaitable) {
    if constexpr (requires { std::forward<Awaitable>(awaitable).operator co_await(); }) {
        return std::forward<Awaitable>(awaitable).operator co_await();
    } else if constexpr (requires { operator co_await(std::forward<Awaitable>(awaitable)); }) {
        return operator co_await(std::forward<Awaitable>(awaitable));
    } else {
        return static_cast<Awaitable&&>(awaitable);
    }
}

template <class Awaitable>
using awaiter_of = std::remove_reference_t<decltype(get_awaiter(std::declval<Awaitable>()))>;
template <class Awaitable>
using await_result_of = decltype(std::declval<awaiter_of<Awaitable>&>().await_resume());

template <class Awaiter, class R>
struct typed_request : await_request {
    Awaiter& awaiter;
    await_result<R> result;

    explicit typed_request(Awaiter& a) noexcept
        : await_request{&suspend_awaiter, &resume_awaiter, {}}, awaiter(a) {}

    static std::coroutine_handle<> suspend_awaiter(await_request* self,
                                                   std::coroutine_handle<> driver) {
        Awaiter& a = static_cast<typed_request*>(self)->awaiter;
        using suspend_result = decltype(a.await_suspend(driver));
        // Nothing is touched after await_suspend returns: the driver may already be resumed.
        if constexpr (std::is_void_v<suspend_result>) {
            a.await_suspend(driver);
            return std::noop_coroutine();
        } else if constexpr (std::is_same_v<suspend_result, bool>) {
            return a.await_suspend(driver) ? std::noop_coroutine() : driver;
        } else {
            return a.await_suspend(driver);
        }
    }
    static void resume_awaiter(await_request* self) {
        auto* me = static_cast<typed_request*>(self);
        me->result.set(me->awaiter);
    }
};

/// The driver's co_await of a request, forwarding to the fiber's awaiter (whose await_ready the
/// fiber has already called).
struct request_awaiter {
    await_request* request;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> driver) {
        return request->suspend(request, driver);
    }
    void await_resume() { request->resume(request); }
};

template <class R, class Fn>
class fiber_body final : public fiber_base {
public:
    fiber_body(Fn& fn, const fiber_options& options, const char* name) noexcept
        : fiber_base(&run, options, name), fn_(fn) {}

    R take() {
        rethrow_if_failed();
        if constexpr (!std::is_void_v<R>) return std::move(*value_);
    }

private:
    // On the fiber's stack; what it throws is caught by the entry function (fiber.cpp).
    static void run(fiber_base* self) {
        auto& me = static_cast<fiber_body&>(*self);
        if constexpr (std::is_void_v<R>) {
            std::invoke(std::move(me.fn_));
        } else {
            me.value_.emplace(std::invoke(std::move(me.fn_)));
        }
    }

    Fn& fn_;
    [[no_unique_address]] std::conditional_t<std::is_void_v<R>, std::monostate, std::optional<R>>
        value_;
};

template <class R, class Fn>
task<R> drive_fiber(Fn fn, fiber_options options, const char* name) {
    fiber_body<R, Fn> fiber(fn, options, name);
    while (await_request* request = fiber.resume()) {
        try {
            co_await request_awaiter{request};
        } catch (...) {
            request->error = std::current_exception();
        }
    }
    co_return fiber.take();
}

}  // namespace detail

/// A task that runs `fn()` on a fiber of its own, as part of the coroutine that awaits the task
/// (no new root, no BH: the fiber starts when the task is awaited). Returns what `fn` returns or
/// rethrows what it throws. The stack is mapped (or taken from this thread's pool) when the
/// fiber starts; failing to map one throws corio::error from the co_await. Bad options abort.
template <class Fn>
task<std::invoke_result_t<Fn&&>> run_on_fiber(Fn fn, fiber_options options = {}) {
    detail::check_fiber_options(options);
    return detail::drive_fiber<std::invoke_result_t<Fn&&>>(std::move(fn), options, "fiber");
}

/// Starts `fn()` on a new fiber on `ctx` (as corio::spawn starts a task: in a BH of `ctx`, from
/// any thread) and returns its join handle: awaiting it (from a task or, with await(), from
/// another fiber) returns `fn`'s value or rethrows its exception. `name` must outlive the fiber
/// (a string literal); it names the task in reports and the fiber in ThreadSanitizer reports.
template <class Fn>
join_handle<std::invoke_result_t<Fn&&>> spawn_fiber(context& ctx, Fn fn, const char* name = "fiber",
                                                    fiber_options options = {}) {
    detail::check_fiber_options(options);
    using result_type = std::invoke_result_t<Fn&&>;
    return spawn(ctx, detail::drive_fiber<result_type>(std::move(fn), options, name), name);
}

/// Waits, on the running fiber, for any awaitable: `await(x)` returns what `co_await x` would
/// (a reference result is returned as a reference) or rethrows what it throws. Works for tasks,
/// join handles, sleep_for, read/write and every corio awaitable; the awaiter's await_suspend
/// is called with a std::coroutine_handle<> (of the fiber's driver). A ready awaitable does not
/// switch stacks. Calling it anywhere but on a fiber aborts with a message.
template <class Awaitable>
detail::await_result_of<Awaitable&&> await(Awaitable&& awaitable) {
    using result_type = detail::await_result_of<Awaitable&&>;
    detail::fiber_base* self = detail::require_fiber("corio::await() used outside a fiber");
    decltype(auto) awaiter_holder = detail::get_awaiter(std::forward<Awaitable>(awaitable));
    auto& awaiter = awaiter_holder;
    if (awaiter.await_ready()) return awaiter.await_resume();
    detail::typed_request<std::remove_reference_t<decltype(awaiter)>, result_type> request(awaiter);
    self->await(request);
    return request.result.take();
}

/// Suspends the running fiber until it is entered again through its handle (current_fiber())
/// with co_wake, co_enter or co_schedule (QEMU's qemu_coroutine_yield). Publish the handle
/// first: the usual QEMU pattern. A wake from another thread may come before the fiber has
/// finished yielding; it then takes effect once it has. Aborts outside a fiber.
void fiber_yield();

/// The running fiber's coroutine handle, or an empty handle when not running on a fiber.
coroutine current_fiber() noexcept;

/// Whether the caller runs on a fiber (and not in a stackless coroutine entered from one).
bool in_fiber() noexcept;

}  // namespace corio
