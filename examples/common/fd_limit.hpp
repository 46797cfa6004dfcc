// fd_limit.hpp — the fd limit of programs that hold many connections open.
#pragma once

#include <fmt/format.h>

#include <sys/resource.h>
#include <string_view>

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

/// Raises the fd limit (raise_fd_limit) for `--connections connections`, which need about
/// `needed` fds: false, after saying so on stderr, if the limit stays lower (better to fail at
/// once than after thousands of connections).
inline bool enough_fds(std::string_view program, int connections, rlim_t needed) {
    const rlim_t limit = raise_fd_limit();
    if (limit >= needed) return true;
    fmt::print(stderr, "{}: --connections {} needs about {} fds, but the hard limit is {}\n",
               program, connections, needed, limit);
    return false;
}

}  // namespace examples
