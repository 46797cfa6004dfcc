// doctest entry point shared by every test program.
//
// meson runs each program once per backend with CORIO_BACKEND set. Before any test runs, the
// backend is probed by creating a context: when it cannot be set up on this machine the
// program prints why and exits 77, which meson reports as SKIP (never as a pass).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fmt/format.h>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    const char* requested = std::getenv("CORIO_BACKEND");
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
