// backend_probe — not an example: the smoke tests run it first to learn whether this machine can
// give the backend CORIO_BACKEND names (a container's seccomp profile may refuse io_uring).
//
// Constructs a corio::context as the examples do. Exit 0: the backend works here. Exit 77 (a
// SKIP for meson) with the reason: the backend cannot be set up on this machine. Exit 1: a bad
// CORIO_BACKEND, a bug of the test setup rather than of the machine.
#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>

int main() {
    const char* requested = std::getenv("CORIO_BACKEND");
    try {
        corio::context ctx({.name = "backend_probe"});
        fmt::print("backend_probe: {} works here\n", corio::to_string(ctx.backend()));
        return 0;
    } catch (const corio::error& e) {
        if (e.code().value() == EINVAL && e.operation().starts_with("CORIO_BACKEND")) {
            fmt::print(stderr, "backend_probe: {}\n", e.what());
            return 1;
        }
        fmt::print("backend {} unavailable here: {}\n", requested ? requested : "auto", e.what());
        return 77;
    }
}
