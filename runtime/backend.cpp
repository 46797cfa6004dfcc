// Backend selection: the context option, then CORIO_BACKEND, then the automatic order
// (io_uring → epoll → poll). A forced backend that cannot be set up is an error, never a silent
// fallback; an automatic fallback is logged once per process with its reason.
#include "fdmon/monitor.hpp"

#include <corio/backend.hpp>
#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fmt/format.h>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace corio {

std::string_view to_string(backend_kind kind) noexcept {
    switch (kind) {
        case backend_kind::automatic:
            return "auto";
        case backend_kind::io_uring:
            return "io_uring";
        case backend_kind::epoll:
            return "epoll";
        case backend_kind::poll:
            return "poll";
    }
    return "?";
}

}  // namespace corio

namespace corio::detail {
namespace {

backend_kind from_environment() {
    const char* env = std::getenv("CORIO_BACKEND");
    if (!env || !*env) return backend_kind::automatic;
    const std::string_view value(env);
    for (backend_kind k : {backend_kind::automatic, backend_kind::io_uring, backend_kind::epoll,
                           backend_kind::poll}) {
        if (value == to_string(k)) return k;
    }
    throw error(EINVAL,
                fmt::format("CORIO_BACKEND='{}' (expected io_uring, epoll, poll or auto)", value));
}

std::unique_ptr<fdmon::monitor> make(backend_kind kind, const context_options& options) {
    switch (kind) {
        case backend_kind::io_uring:
            return fdmon::make_io_uring(options.ring_entries, options.max_batch);
        case backend_kind::epoll:
            return fdmon::make_epoll();
        case backend_kind::poll:
            return fdmon::make_poll();
        case backend_kind::automatic:
            break;
    }
    throw error(EINVAL, "backend selection");
}

void log_fallback(const std::string& name, backend_kind chosen, const std::string& reasons) {
    static std::atomic<bool> logged{false};
    if (reasons.empty() || logged.exchange(true)) return;
    fmt::print(stderr, "corio: context '{}': using the {} backend ({})\n", name, to_string(chosen),
               reasons);
}

}  // namespace

std::unique_ptr<fdmon::monitor> make_monitor(const context_options& options) {
    backend_kind requested = options.backend;
    if (requested == backend_kind::automatic) requested = from_environment();
    if (requested != backend_kind::automatic) return make(requested, options);
    // io_uring → epoll → poll. The first fallback of the process is logged with its reason
    // (typically io_uring_setup refused by a seccomp profile, kernel.io_uring_disabled or the
    // locked-memory limit); later contexts fall back silently for the same reason.
    std::string reasons;
    for (backend_kind kind : {backend_kind::io_uring, backend_kind::epoll, backend_kind::poll}) {
        try {
            auto monitor = make(kind, options);
            log_fallback(options.name, kind, reasons);
            return monitor;
        } catch (const error& e) {
            if (kind == backend_kind::poll) throw;
            reasons += fmt::format("{}{}", reasons.empty() ? "" : "; ", e.what());
        }
    }
    throw error(EINVAL, "backend selection");
}

}  // namespace corio::detail
