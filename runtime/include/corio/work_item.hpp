// corio::work_item — an intrusive, allocation-free unit of work for context::post_item.
#pragma once

#include <atomic>

namespace corio {

/// Caller-owned work to run once on a context's home thread (QEMU's scheduled-coroutine list,
/// generalized). Embed it in the object it belongs to; it must stay alive and must not be posted
/// again until `run` has been called.
struct work_item {
    void (*run)(work_item* self) = nullptr;
    std::atomic<work_item*> next{nullptr};  ///< owned by the context while queued
};

}  // namespace corio
