// A seccomp filter that refuses io_uring_setup with EPERM, as container runtimes' default
// profiles do: the fallback tests and the no_io_uring wrapper (tests/run.sh --no-io-uring).
#pragma once

namespace corio::test {

/// Installs the filter on the calling thread (inherited by threads and processes started
/// afterwards, and kept across exec). Returns false, with errno set, if it could not be set.
bool refuse_io_uring_setup();

}  // namespace corio::test
