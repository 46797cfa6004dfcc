// corio::cqe_handler — the completion half of `context::add_sqe` (QEMU's CqeHandler).
#pragma once

#include <cstdint>

struct io_uring_sqe;

namespace corio {

/// Caller-owned completion record for one io_uring request submitted with `context::add_sqe`.
/// Embed it in the object that owns the operation (no allocation per operation). It must stay
/// alive and unmoved until `cb` has run for the last CQE of the request (one without
/// IORING_CQE_F_MORE in `flags`). The loop copies each CQE's `res` and `flags` into it and calls
/// `cb(this)` on the home thread at a point where user callbacks are safe.
struct cqe_handler {
    void (*cb)(cqe_handler* self) = nullptr;
    std::int32_t res = 0;     ///< the CQE's result (negative errno on failure)
    std::uint32_t flags = 0;  ///< the CQE's flags (IORING_CQE_F_MORE, ...)
    // Owned by the loop while the request is in flight: the list of requests a context's
    // teardown waits for, and the opcode it names a request by when the kernel is slow.
    cqe_handler* next = nullptr;
    cqe_handler* prev = nullptr;
    std::uint8_t opcode = 0;
};

/// Fills a submission entry for `context::add_sqe`; must not touch `user_data`.
using sqe_prep_fn = void (*)(io_uring_sqe* sqe, void* opaque);

}  // namespace corio
