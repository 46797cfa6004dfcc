#include "fdmon/monitor.hpp"

#include <corio/error.hpp>

#include <fcntl.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace corio::fdmon {

namespace {
[[noreturn]] void not_io_uring(const char* what) {
    std::fprintf(stderr,
                 "corio: %s on a context whose backend is not io_uring "
                 "(check has_io_uring() first)\n",
                 what);
    std::abort();
}
}  // namespace

void monitor::check_fd(int fd) {
    if (fcntl(fd, F_GETFD) < 0) throw error(errno, "fcntl(fd " + std::to_string(fd) + ")");
}

void monitor::add_sqe(sqe_prep_fn, void*, cqe_handler*) {
    not_io_uring("add_sqe");
}

void monitor::cancel_sqe(cqe_handler*) {
    not_io_uring("cancel_sqe");
}

}  // namespace corio::fdmon
