// Backend selection: the context option, then CORIO_BACKEND, then the automatic order
// (io_uring → epoll → poll). A forced backend that cannot be set up is an error, never a silent
// fallback; an automatic fallback is logged once per process with its reason.
#include "fdmon/monitor.hpp"

#include <corio/backend.hpp>
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

std::unique_ptr<fdmon::monitor> make_forced(backend_kind kind) {
    switch (kind) {
        case backend_kind::epoll:
            return fdmon::make_epoll();
        case backend_kind::poll:
            return fdmon::make_poll();
        case backend_kind::io_uring:
            throw error(ENOSYS, "io_uring backend: not part of this build of corio yet");
        case backend_kind::automatic:
            break;
    }
    throw error(EINVAL, "backend selection");
}

}  // namespace

std::unique_ptr<fdmon::monitor> make_monitor(backend_kind requested, const std::string& name) {
    if (requested == backend_kind::automatic) requested = from_environment();
    if (requested != backend_kind::automatic) return make_forced(requested);
    try {
        return fdmon::make_epoll();
    } catch (const error& e) {
        static std::atomic<bool> logged{false};
        if (!logged.exchange(true)) {
            fmt::print(stderr, "corio: context '{}': using the poll backend ({})\n", name,
                       e.what());
        }
        return fdmon::make_poll();
    }
}

}  // namespace corio::detail
