// Backend selection: the loop's option, then CORIO_BACKEND, then the automatic order
// (io_uring → epoll → poll; epoll → poll in a build without io_uring). A forced backend that
// cannot be set up is an error, never a silent fallback; an automatic fallback is logged once
// per process with its reason.
#include "fdmon/select.hpp"

#include "fdmon/detail/backends.hpp"

#include <corio/config.hpp>
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

namespace corio::fdmon {
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

std::unique_ptr<monitor> make(backend_kind kind, [[maybe_unused]] const selection& s) {
    switch (kind) {
        case backend_kind::io_uring:
#if CORIO_HAS_IO_URING
            return make_io_uring(s.ring_entries, s.max_batch);
#else
            throw error(ENOSYS, "io_uring backend (this build has no io_uring)");
#endif
        case backend_kind::epoll:
            return make_epoll();
        case backend_kind::poll:
            return make_poll();
        case backend_kind::automatic:
            break;
    }
    throw error(EINVAL, "backend selection");
}

void log_fallback(std::string_view owner, backend_kind chosen, const std::string& reasons) {
    static std::atomic<bool> logged{false};
    if (reasons.empty() || logged.exchange(true)) return;
    fmt::print(stderr, "corio: context '{}': using the {} backend ({})\n", owner, to_string(chosen),
               reasons);
}

}  // namespace

std::unique_ptr<monitor> make_monitor(const selection& s) {
    backend_kind requested = s.requested;
    if (requested == backend_kind::automatic) requested = from_environment();
    if (requested != backend_kind::automatic) return make(requested, s);
    // The first fallback of the process is logged with its reason (typically io_uring_setup
    // refused by a seccomp profile, kernel.io_uring_disabled or the locked-memory limit); later
    // loops fall back silently for the same reason. A build without io_uring starts at epoll:
    // that is no fallback.
    std::string reasons;
    for (backend_kind kind : {backend_kind::io_uring, backend_kind::epoll, backend_kind::poll}) {
        if (kind == backend_kind::io_uring && !CORIO_HAS_IO_URING) continue;
        try {
            auto monitor = make(kind, s);
            log_fallback(s.owner, kind, reasons);
            return monitor;
        } catch (const error& e) {
            if (kind == backend_kind::poll) throw;
            reasons += fmt::format("{}{}", reasons.empty() ? "" : "; ", e.what());
        }
    }
    throw error(EINVAL, "backend selection");
}

}  // namespace corio::fdmon
