// The non-template half of spawn.hpp: completion hand-over and reporting of lost exceptions.
#include <corio/spawn.hpp>

#include <fmt/format.h>

namespace corio::detail {

void join_state_base::complete() noexcept {
    if (phase.exchange(done, std::memory_order_acq_rel) == joined) {
        // The joiner suspended before we finished: resume it on its own context.
        joiner_ctx->post([h = joiner] { h.resume(); }, "join");
    }
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
