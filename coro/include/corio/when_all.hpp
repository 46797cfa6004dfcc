// corio::when_all — run tasks concurrently on the current context and wait for all of them.
#pragma once

#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace corio {

namespace detail {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// A finished task's value or exception, taken without rethrowing.
template <class T>
struct settled {
    std::variant<std::monostate, value_or_monostate<T>, std::exception_ptr> outcome;
};

template <class T>
task<settled<T>> settle(join_handle<T>& handle) {
    settled<T> s;
    try {
        if constexpr (std::is_void_v<T>) {
            co_await handle;
            s.outcome.template emplace<1>();
        } else {
            s.outcome.template emplace<1>(co_await handle);
        }
    } catch (...) {
        s.outcome.template emplace<2>(std::current_exception());
    }
    co_return s;
}

template <class... Ts, std::size_t... Is>
task<std::tuple<value_or_monostate<Ts>...>> when_all_impl(std::tuple<join_handle<Ts>...> handles,
                                                          std::index_sequence<Is...>) {
    // Braced initialization evaluates left to right: every task is awaited, in order, even
    // after one has failed, so none is left running when this returns.
    std::tuple<settled<Ts>...> results{co_await settle(std::get<Is>(handles))...};
    std::exception_ptr first;
    ((first = first ? first
                    : (std::get<Is>(results).outcome.index() == 2
                           ? std::get<2>(std::get<Is>(results).outcome)
                           : nullptr)),
     ...);
    if (first) std::rethrow_exception(first);
    co_return std::tuple<value_or_monostate<Ts>...>{
        std::move(std::get<1>(std::get<Is>(results).outcome))...};
}

template <class T>
task<std::vector<value_or_monostate<T>>> when_all_impl(std::vector<join_handle<T>> handles) {
    std::vector<settled<T>> results;
    results.reserve(handles.size());
    for (auto& h : handles) results.push_back(co_await settle(h));
    std::vector<value_or_monostate<T>> values;
    values.reserve(results.size());
    for (auto& r : results) {
        if (r.outcome.index() == 2) std::rethrow_exception(std::get<2>(r.outcome));
        values.push_back(std::move(std::get<1>(r.outcome)));
    }
    co_return values;
}

inline context& when_context(const char* what) {
    context* ctx = context::current();
    if (!ctx) misuse(what);
    return *ctx;
}

}  // namespace detail

/// `co_await when_all(a, b, ...)`: starts every task on the current context (they interleave at
/// their suspension points), waits until all have finished and returns their values as a tuple
/// (std::monostate for task<void>). If any threw, all are still awaited, then the first
/// exception (in argument order) is rethrown. The tasks share the caller's stop token
/// (current_stop_token()): cancelling the caller cancels them. Allocates one join state per task.
template <class... Ts>
task<std::tuple<detail::value_or_monostate<Ts>...>> when_all(task<Ts>... tasks) {
    context& ctx = detail::when_context("when_all() used on a thread without a context");
    return detail::when_all_impl<Ts...>(
        std::tuple<join_handle<Ts>...>{
            spawn(ctx, std::move(tasks), "when_all", current_stop_token())...},
        std::index_sequence_for<Ts...>{});
}

/// `co_await when_all(std::move(vector_of_tasks))`: the same for any number of tasks of one
/// type; the values come back in the vector's order.
template <class T>
task<std::vector<detail::value_or_monostate<T>>> when_all(std::vector<task<T>> tasks) {
    context& ctx = detail::when_context("when_all() used on a thread without a context");
    std::vector<join_handle<T>> handles;
    handles.reserve(tasks.size());
    for (auto& t : tasks)
        handles.push_back(spawn(ctx, std::move(t), "when_all", current_stop_token()));
    return detail::when_all_impl<T>(std::move(handles));
}

}  // namespace corio
