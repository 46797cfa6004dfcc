// The backends' factories, for select.cpp (each defined in its backend's file).
#pragma once

#include "fdmon/monitor.hpp"

#include <memory>

namespace corio::fdmon {

/// An io_uring of `entries` SQEs; `max_batch` > 0 submits as soon as that many are queued.
/// Throws corio::error (errno of io_uring_setup: ENOSYS, EPERM, ENOMEM, ...). Defined only in a
/// build with io_uring (CORIO_HAS_IO_URING).
std::unique_ptr<monitor> make_io_uring(unsigned entries, unsigned max_batch);
/// epoll_create1(EPOLL_CLOEXEC). Throws corio::error.
std::unique_ptr<monitor> make_epoll();
/// ppoll(2); cannot fail.
std::unique_ptr<monitor> make_poll();

}  // namespace corio::fdmon
