// The non-template half of spawn.hpp: completion hand-over and reporting of lost exceptions.
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <optional>

namespace corio::detail {

void join_state_base::complete() noexcept {
    // run() is blocked in `waiting` until `done` is published; once it is, run() may return
    // and its caller destroy that context: keep it alive across publish + notify.
    std::optional<context::keep_alive> alive;
    if (notify_on_done) alive.emplace(*notify_on_done);
    context* const waiting = notify_on_done;
    if (phase.exchange(done, std::memory_order_acq_rel) == joined) {
        // The joiner suspended before we finished. On our context it runs once the root has
        // ended (deferred wake); on another one it is scheduled there.
        co_wake(coroutine(joiner));
    }
    if (waiting) waiting->notify();
}

void join_state_base::release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (error && !observed) {
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        fmt::print(stderr, "corio: task '{}' ended with an exception nobody awaited: {}\n", name,
                   what);
    }
    delete this;
}

}  // namespace corio::detail
