// corio::result<T> — a value or an error code: how expected I/O conditions (EOF as 0 bytes,
// ECONNRESET, EPIPE, EAGAIN, ECANCELED, ETIMEDOUT) reach application code, without exceptions.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio {

/// Either a T or a std::error_code (generic category, errno values). `value()` on an error
/// throws std::system_error; `*r` and `r->` require `r.ok()`.
template <class T = void>
class [[nodiscard]] result {
public:
    result(T value)
        : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
    result(std::error_code error) : v_(std::in_place_index<1>, error) {}  // NOLINT
    static result from_errno(int errnum) {
        return result(std::error_code(errnum, std::generic_category()));
    }

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    std::error_code error() const noexcept { return ok() ? std::error_code() : std::get<1>(v_); }

    T& value() & {
        check();
        return std::get<0>(v_);
    }
    T&& value() && {
        check();
        return std::get<0>(std::move(v_));
    }
    const T& value() const& {
        check();
        return std::get<0>(v_);
    }
    T& operator*() & noexcept { return *std::get_if<0>(&v_); }
    const T& operator*() const& noexcept { return *std::get_if<0>(&v_); }
    T&& operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
    T* operator->() noexcept { return std::get_if<0>(&v_); }
    const T* operator->() const noexcept { return std::get_if<0>(&v_); }

private:
    void check() const {
        if (!ok()) throw std::system_error(std::get<1>(v_));
    }
    std::variant<T, std::error_code> v_;
};

/// Not [[nodiscard]]: a plain `co_await sleep_for(...)` may ignore that it was cancelled.
template <>
class result<void> {
public:
    result() noexcept = default;
    result(std::error_code error) noexcept : error_(error) {}  // NOLINT: implicit on purpose
    static result from_errno(int errnum) {
        return result(std::error_code(errnum, std::generic_category()));
    }

    bool ok() const noexcept { return !error_; }
    explicit operator bool() const noexcept { return ok(); }
    std::error_code error() const noexcept { return error_; }
    void value() const {
        if (error_) throw std::system_error(error_);
    }

private:
    std::error_code error_;
};

}  // namespace corio
