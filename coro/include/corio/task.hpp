// corio::task<T> — a lazy coroutine that produces a T (or an exception) for whoever awaits it.
//
// A task does not start until it is awaited; the awaiter is resumed by symmetric transfer when
// it finishes, so arbitrarily deep chains of nested co_awaits use constant stack. Frames come
// from a per-thread recycling allocator (QEMU's coroutine pool, for stackless frames).
// Constant stack relies on the compiler emitting symmetric transfer as a tail call, which GCC
// and Clang do in optimized builds; AddressSanitizer and ThreadSanitizer instrumentation
// prevents it, so under those sanitizers every nesting level costs stack.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio {

namespace detail {

/// Per-thread frame recycling: blocks are cached by size class and reused by the next frame of
/// that class allocated on the same thread. A frame freed on another thread goes to that
/// thread's cache (blocks are plain memory); caches are bounded and emptied at thread exit.
void* frame_alloc(std::size_t size);
void frame_free(void* frame, std::size_t size) noexcept;

struct frame_allocated {
    static void* operator new(std::size_t size) { return frame_alloc(size); }
    static void operator delete(void* frame, std::size_t size) noexcept { frame_free(frame, size); }
};

[[noreturn]] inline void misuse(const char* what) noexcept {
    std::fprintf(stderr, "corio: %s\n", what);
    std::abort();
}

struct task_promise_base : frame_allocated {
    std::coroutine_handle<> continuation;

    std::suspend_always initial_suspend() const noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
            std::coroutine_handle<> next = self.promise().continuation;
            return next ? next : std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }
};

template <class T>
struct task_promise;

}  // namespace detail

/// A lazily started coroutine returning T. Move-only; destroying a task that has not run (or
/// has finished) frees its frame and everything the frame owns. Awaiting it runs it to
/// completion and returns its value or rethrows its exception; a task can be awaited once.
/// Awaiting an empty (moved-from or already awaited) task aborts with a message.
template <class T = void>
class [[nodiscard]] task {
    static_assert(!std::is_reference_v<T>, "task<T&>: return a pointer or a reference_wrapper");

public:
    using promise_type = detail::task_promise<T>;
    using value_type = T;

    task() noexcept = default;
    explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
    task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            if (h_) h_.destroy();
            h_ = std::exchange(other.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (h_) h_.destroy();
    }

    /// Holds a coroutine that has not been awaited yet.
    bool valid() const noexcept { return static_cast<bool>(h_); }

    auto operator co_await() && noexcept { return awaiter{std::exchange(h_, {})}; }
    auto operator co_await() & noexcept { return awaiter{std::exchange(h_, {})}; }

private:
    struct awaiter {
        std::coroutine_handle<promise_type> h;

        bool await_ready() const noexcept {
            if (!h) detail::misuse("co_await on an empty task (moved from, or awaited already)");
            return false;
        }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
            h.promise().continuation = caller;
            return h;  // symmetric transfer: start the task without growing the stack
        }
        T await_resume() {
            // The frame is freed here, whatever the outcome, once its result is taken.
            struct destroy_on_exit {
                std::coroutine_handle<promise_type> h;
                ~destroy_on_exit() { h.destroy(); }
            } guard{h};
            return h.promise().take();
        }
    };

    std::coroutine_handle<promise_type> h_;
};

namespace detail {

template <class T>
struct task_promise : task_promise_base {
    std::variant<std::monostate, T, std::exception_ptr> result;

    task<T> get_return_object() noexcept {
        return task<T>(std::coroutine_handle<task_promise>::from_promise(*this));
    }
    template <class U>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        result.template emplace<1>(std::forward<U>(value));
    }
    void unhandled_exception() noexcept { result.template emplace<2>(std::current_exception()); }
    T take() {
        if (result.index() == 2) std::rethrow_exception(std::get<2>(result));
        return std::move(std::get<1>(result));
    }
};

template <>
struct task_promise<void> : task_promise_base {
    std::exception_ptr error;

    task<void> get_return_object() noexcept {
        return task<void>(std::coroutine_handle<task_promise>::from_promise(*this));
    }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
    void take() const {
        if (error) std::rethrow_exception(error);
    }
};

}  // namespace detail
}  // namespace corio
