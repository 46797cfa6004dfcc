// corio::when_any — run tasks concurrently on the current context; the first to finish wins and
// the others are cancelled and awaited before the result is returned.
#pragma once

#include <corio/schedule.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/when_all.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <exception>
#include <limits>
#include <span>
#include <stop_token>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace corio {

namespace detail {

/// What the contenders of one when_any share: who finished first, and how to stop the others.
/// Contenders may finish on other threads (a task may move with reschedule_self).
class race {
public:
    static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();

    explicit race(std::span<std::stop_source> sources) noexcept : sources_(sources) {}

    /// Contender `index` has finished; the first one to call this wins and stops the others.
    void finished(std::size_t index) noexcept {
        std::size_t expected = none;
        if (!winner_.compare_exchange_strong(expected, index, std::memory_order_acq_rel)) return;
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            if (i != index) sources_[i].request_stop();
        }
    }
    void stop_all() noexcept {
        for (auto& s : sources_) s.request_stop();
    }
    /// Valid once every contender has been awaited.
    std::size_t winner() const noexcept { return winner_.load(std::memory_order_acquire); }

private:
    std::span<std::stop_source> sources_;
    std::atomic<std::size_t> winner_{none};
};

template <class T>
task<void> contend(task<T> body, settled<T>& slot, race& r, std::size_t index) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(body);
            slot.outcome.template emplace<1>();
        } else {
            slot.outcome.template emplace<1>(co_await std::move(body));
        }
    } catch (...) {
        slot.outcome.template emplace<2>(std::current_exception());
    }
    r.finished(index);
}

// The caller's own cancellation reaches every contender.
inline auto link_to_caller(race& r) {
    return std::stop_callback(current_stop_token(), [&r]() noexcept { r.stop_all(); });
}

template <class... Ts, std::size_t... Is>
task<std::variant<value_or_monostate<Ts>...>> when_any_impl(std::tuple<task<Ts>...> tasks,
                                                            std::index_sequence<Is...>) {
    context& ctx = when_context("when_any() used on a thread without a context");
    std::array<std::stop_source, sizeof...(Ts)> sources;
    race r(sources);
    auto link = link_to_caller(r);
    std::tuple<settled<Ts>...> slots;
    std::array<join_handle<void>, sizeof...(Ts)> handles{
        spawn(ctx, contend(std::move(std::get<Is>(tasks)), std::get<Is>(slots), r, Is), "when_any",
              sources[Is].get_token())...};
    for (auto& h : handles) co_await h;  // contenders never throw
    std::variant<value_or_monostate<Ts>...> out;
    std::exception_ptr error;
    const std::size_t w = r.winner();
    (
        [&] {
            if (w != Is) return;
            auto& outcome = std::get<Is>(slots).outcome;
            if (outcome.index() == 2) {
                error = std::get<2>(outcome);
            } else {
                out.template emplace<Is>(std::move(std::get<1>(outcome)));
            }
        }(),
        ...);
    if (error) std::rethrow_exception(error);
    co_return out;
}

template <class T>
task<std::pair<std::size_t, value_or_monostate<T>>> when_any_impl(std::vector<task<T>> tasks) {
    context& ctx = when_context("when_any() used on a thread without a context");
    std::vector<std::stop_source> sources(tasks.size());
    race r(sources);
    auto link = link_to_caller(r);
    std::vector<settled<T>> slots(tasks.size());
    std::vector<join_handle<void>> handles;
    handles.reserve(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        handles.push_back(spawn(ctx, contend(std::move(tasks[i]), slots[i], r, i), "when_any",
                                sources[i].get_token()));
    }
    for (auto& h : handles) co_await h;
    const std::size_t w = r.winner();
    auto& outcome = slots[w].outcome;
    if (outcome.index() == 2) std::rethrow_exception(std::get<2>(outcome));
    co_return std::pair<std::size_t, value_or_monostate<T>>{w, std::move(std::get<1>(outcome))};
}

}  // namespace detail

/// `co_await when_any(a, b, ...)`: starts every task on the current context, each with its own
/// stop token; the first to finish (with a value or an exception) wins. Then the others get a
/// stop request — every corio operation they are awaiting, or await later, ends with ECANCELED —
/// and when_any awaits them all before it returns, so nothing is left running. Returns the
/// winner's value as the alternative of the variant whose index is the winner's position
/// (std::monostate for task<void>), or rethrows the winner's exception; the losers' values and
/// exceptions are discarded. Cancelling the caller cancels every task. Cancellation is
/// cooperative: a loser that never awaits a corio operation runs to its end. Allocates one join
/// state and one stop state per task.
template <class... Ts>
task<std::variant<detail::value_or_monostate<Ts>...>> when_any(task<Ts>... tasks) {
    static_assert(sizeof...(Ts) > 0, "when_any() needs at least one task");
    return detail::when_any_impl<Ts...>(std::tuple<task<Ts>...>{std::move(tasks)...},
                                        std::index_sequence_for<Ts...>{});
}

/// `co_await when_any(std::move(vector_of_tasks))`: the same for any number of tasks of one type;
/// returns the winner's index in the vector and its value. An empty vector aborts (nothing could
/// ever win).
template <class T>
task<std::pair<std::size_t, detail::value_or_monostate<T>>> when_any(std::vector<task<T>> tasks) {
    if (tasks.empty()) detail::misuse("when_any() of an empty vector of tasks");
    return detail::when_any_impl<T>(std::move(tasks));
}

}  // namespace corio
