// The io_uring half of the I/O awaitables (private, never installed): liburing's prep helpers,
// in a build with io_uring only. `CORIO_URING_PREP(fn)` is `fn` there and a null prep function
// in a build without io_uring, where no context has_io_uring() and the operations always take
// their readiness or thread-pool path: so the SQE-filling code is compiled only where it can run.
#pragma once

#include <corio/config.hpp>

#if CORIO_HAS_IO_URING
#include <liburing.h>
#define CORIO_URING_PREP(...) __VA_ARGS__
#else
#define CORIO_URING_PREP(...) nullptr
#endif
