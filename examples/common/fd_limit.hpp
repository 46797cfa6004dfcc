// fd_limit.hpp — the fd limit of programs that hold many connections open.
#pragma once

#include <sys/resource.h>

namespace examples {

/// Raises the soft RLIMIT_NOFILE to the hard one (every connection is an fd) and returns the
/// soft limit then in force. An unlimited hard limit cannot be had: the soft one stays as it is.
inline rlim_t raise_fd_limit() {
    rlimit fds{};
    if (getrlimit(RLIMIT_NOFILE, &fds) != 0) return 0;
    if (fds.rlim_cur < fds.rlim_max) {
        const rlim_t old = fds.rlim_cur;
        fds.rlim_cur = fds.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &fds) != 0) fds.rlim_cur = old;
    }
    return fds.rlim_cur;
}

}  // namespace examples
