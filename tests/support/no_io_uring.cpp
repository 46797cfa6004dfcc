// no_io_uring COMMAND [ARG...]: runs COMMAND with io_uring_setup refused (EPERM) by a seccomp
// filter, as in a container with the default profile; tests/run.sh --no-io-uring runs the
// suite under it (meson test --wrapper). Exits 127 if COMMAND cannot be run, 126 if the filter
// cannot be installed.
#include "support/seccomp.hpp"

#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: no_io_uring COMMAND [ARG...]\n");
        return 2;
    }
    if (!corio::test::refuse_io_uring_setup()) {
        std::fprintf(stderr, "no_io_uring: cannot install the seccomp filter: %s\n",
                     std::strerror(errno));
        return 126;
    }
    execvp(argv[1], argv + 1);
    std::fprintf(stderr, "no_io_uring: %s: %s\n", argv[1], std::strerror(errno));
    return 127;
}
