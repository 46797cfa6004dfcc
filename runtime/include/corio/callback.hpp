// corio::callback — a move-only `void()` callable with small-buffer storage, the callback type of
// bottom halves, one-shot posts and timers. Callables of up to three pointers that are nothrow
// movable are stored inline (no allocation); larger ones are allocated once, at construction.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace corio {

class callback;

/// What a `callback` can hold: anything callable as `void()`, other than a callback itself.
template <class F>
concept callback_target =
    !std::is_same_v<std::decay_t<F>, callback> && std::is_invocable_r_v<void, std::decay_t<F>&>;

class callback {
public:
    callback() noexcept = default;

    template <callback_target F>
    callback(F&& f) {  // NOLINT(google-explicit-constructor): lambdas convert implicitly
        using T = std::decay_t<F>;
        if constexpr (fits_inline<T>) {
            ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
            invoke_ = [](void* s) { (*std::launder(static_cast<T*>(s)))(); };
            manage_ = &manage_inline<T>;
        } else {
            *reinterpret_cast<T**>(storage_) = new T(std::forward<F>(f));
            invoke_ = [](void* s) { (**static_cast<T**>(s))(); };
            manage_ = &manage_heap<T>;
        }
    }

    callback(callback&& other) noexcept { take(other); }
    callback& operator=(callback&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }
    callback(const callback&) = delete;
    callback& operator=(const callback&) = delete;
    ~callback() { reset(); }

    /// Calls the target. Calling an empty callback is a programming error (null call).
    void operator()() { invoke_(storage_); }
    explicit operator bool() const noexcept { return invoke_ != nullptr; }

    /// Destroys the target (and what it captured); the callback becomes empty.
    void reset() noexcept {
        if (manage_) manage_(op::destroy, storage_, nullptr);
        invoke_ = nullptr;
        manage_ = nullptr;
    }

private:
    enum class op { move, destroy };
    using invoke_fn = void (*)(void*);
    using manage_fn = void (*)(op, void* self, void* from) noexcept;
    static constexpr std::size_t inline_size = 3 * sizeof(void*);

    template <class T>
    static constexpr bool fits_inline =
        sizeof(T) <= inline_size &&
        alignof(T) <= alignof(void*) && std::is_nothrow_move_constructible_v<T>;

    template <class T>
    static void manage_inline(op o, void* self, void* from) noexcept {
        if (o == op::move) {
            T* src = std::launder(static_cast<T*>(from));
            ::new (self) T(std::move(*src));
            src->~T();
        } else {
            std::launder(static_cast<T*>(self))->~T();
        }
    }
    template <class T>
    static void manage_heap(op o, void* self, void* from) noexcept {
        if (o == op::move) {
            *static_cast<T**>(self) = *static_cast<T**>(from);
        } else {
            delete *static_cast<T**>(self);
        }
    }

    void take(callback& other) noexcept {
        if (other.manage_) other.manage_(op::move, storage_, other.storage_);
        invoke_ = std::exchange(other.invoke_, nullptr);
        manage_ = std::exchange(other.manage_, nullptr);
    }

    alignas(void*) unsigned char storage_[inline_size];
    invoke_fn invoke_ = nullptr;
    manage_fn manage_ = nullptr;
};

}  // namespace corio
