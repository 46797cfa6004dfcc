// doctest entry point shared by every test program.
//
// meson runs each program once per backend with CORIO_BACKEND set. Before any test runs, the
// backend is probed by creating a context: when it cannot be set up on this machine the
// program prints why and exits 77, which meson reports as SKIP (never as a pass). A value of
// CORIO_BACKEND that names no backend is a mistake in the suite, not a missing capability: FAIL.
//
// A test that outlives meson's timeout gets SIGTERM, which doctest reports naming the test case
// that was running (a hang is usually a lost wake-up).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fmt/format.h>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

bool names_a_backend(std::string_view value) {
    for (corio::backend_kind k : {corio::backend_kind::automatic, corio::backend_kind::io_uring,
                                  corio::backend_kind::epoll, corio::backend_kind::poll}) {
        if (value == corio::to_string(k)) return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    const char* requested = std::getenv("CORIO_BACKEND");
    if (requested && *requested && !names_a_backend(requested)) {
        fmt::print(stderr, "CORIO_BACKEND='{}' names no backend (auto, io_uring, epoll, poll)\n",
                   requested);
        return 1;
    }
    try {
        corio::context probe;
        fmt::print("corio tests: backend {} (CORIO_BACKEND={})\n",
                   corio::to_string(probe.backend()), requested ? requested : "unset");
    } catch (const corio::error& e) {
        fmt::print("SKIP: backend {} unavailable here: {}\n", requested ? requested : "auto",
                   e.what());
        return 77;
    }
    std::fflush(stdout);
    doctest::Context runner(argc, argv);
    return runner.run();
}
