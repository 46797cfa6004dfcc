#include "fdmon/monitor.hpp"

#include <cstdio>
#include <cstdlib>

namespace corio::fdmon {

void monitor::add_sqe(sqe_prep_fn, void*, cqe_handler*) {
    std::fprintf(stderr,
                 "corio: add_sqe on a context whose backend is not io_uring "
                 "(check has_io_uring() first)\n");
    std::abort();
}

}  // namespace corio::fdmon
