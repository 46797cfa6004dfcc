// One fd handler per (context, fd) for the coroutines' readiness waits (see fd_waiters.hpp).
// The handler's opaque is the pair's entry. Entries are kept per thread by fd number and reused,
// so a wait allocates nothing once its fd number was seen, and an entry never moves while a
// handler points at it.
#include "coro/detail/fd_waiters.hpp"

#include <corio/error.hpp>

#include <fmt/format.h>
#include <memory>
#include <vector>

namespace corio::detail {

namespace {

struct waiter_slot {
    fd_ready_fn ready = nullptr;
    void* waiter = nullptr;
};

struct entry {
    context* ctx = nullptr;  // null: unused
    waiter_slot reader;
    waiter_slot writer;
    std::unique_ptr<entry> next;  // the same fd number waited on from another context
};

// By fd number; a chain holds one entry per context of this thread waiting on that number.
thread_local std::vector<std::unique_ptr<entry>> entries;

void on_readable(void* e) {
    const waiter_slot& s = static_cast<entry*>(e)->reader;
    if (s.waiter) s.ready(s.waiter);
}

void on_writable(void* e) {
    const waiter_slot& s = static_cast<entry*>(e)->writer;
    if (s.waiter) s.ready(s.waiter);
}

fd_callbacks callbacks_of(const entry& e) noexcept {
    fd_callbacks cb;
    if (e.reader.waiter) cb.read = on_readable;
    if (e.writer.waiter) cb.write = on_writable;
    cb.once = true;
    return cb;
}

entry* find(const context& ctx, int fd) noexcept {
    if (fd < 0 || static_cast<std::size_t>(fd) >= entries.size()) return nullptr;
    for (entry* e = entries[fd].get(); e; e = e->next.get()) {
        if (e->ctx == &ctx) return e;
    }
    return nullptr;
}

// An unused entry for `fd` (which is not negative).
entry& unused_entry(int fd) {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= entries.size()) entries.resize(i + 1);
    std::unique_ptr<entry>* link = &entries[i];
    while (*link && (*link)->ctx) link = &(*link)->next;
    if (!*link) *link = std::make_unique<entry>();
    return **link;
}

}  // namespace

void add_fd_waiter(context& ctx, int fd, bool write, fd_ready_fn ready, void* waiter) {
    if (entry* e = find(ctx, fd)) {
        waiter_slot& slot = write ? e->writer : e->reader;
        if (slot.waiter) {
            throw error(EEXIST, fmt::format("a second coroutine waiting to {} fd {}",
                                            write ? "write" : "read", fd));
        }
        slot = {ready, waiter};
        try {
            ctx.set_fd_handler(fd, callbacks_of(*e), e);
        } catch (...) {
            slot = {};
            throw;
        }
        return;
    }
    if (fd < 0) throw error(EBADF, fmt::format("waiting for fd {}", fd));
    fd_callbacks cb;
    if (write) {
        cb.write = on_writable;
    } else {
        cb.read = on_readable;
    }
    cb.once = true;
    entry& e = unused_entry(fd);
    ctx.add_fd_handler(fd, cb, &e);
    e.ctx = &ctx;
    (write ? e.writer : e.reader) = {ready, waiter};
}

void remove_fd_waiter(context& ctx, int fd, bool write) noexcept {
    entry* e = find(ctx, fd);
    if (!e) return;
    (write ? e->writer : e->reader) = {};
    if (e->reader.waiter || e->writer.waiter) {
        try {
            ctx.set_fd_handler(fd, callbacks_of(*e), e);
        } catch (const error&) {
            // The fd was closed: the handler keeps both callbacks, the cleared one does nothing.
        }
        return;
    }
    e->ctx = nullptr;
    // The handler may already be gone if it was removed behind the waiters' back.
    if (ctx.has_fd_handler(fd)) {
        try {
            ctx.remove_fd_handler(fd);
        } catch (const error&) {
        }
    }
}

}  // namespace corio::detail
