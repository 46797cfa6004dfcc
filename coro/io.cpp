// I/O awaitables (see io.hpp). Readiness uses a temporary fd handler on the current context,
// shared by a reader and a writer of the same fd (fd_waiters.hpp): the same code path,
// level-triggered, on io_uring (POLL_ADD), epoll and poll.
#include "coro/detail/fd_waiters.hpp"
#include "coro/detail/io_uring.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/task.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <memory>
#include <utility>

namespace corio {

namespace detail {

// Removes a readiness wait, if still registered; `ctx` is null afterwards.
void remove_waiter(context*& ctx, int fd, bool write) noexcept {
    if (!ctx) return;
    remove_fd_waiter(*ctx, fd, write);
    ctx = nullptr;
}

}  // namespace detail

wait_ready::~wait_ready() {
    unregister();
}

void wait_ready::unregister() noexcept {
    detail::remove_waiter(ctx_, fd_, dir_ == direction::write);
}

bool wait_ready::await_ready() noexcept {
    if (stop_.stop_requested() || detail::coroutine_stop_requested()) {
        early_error_ = ECANCELED;
        return true;
    }
    return false;
}

bool wait_ready::await_suspend(std::coroutine_handle<> h) {
    detail::co_state* self = detail::require_coroutine("wait_readable/wait_writable");
    context* ctx = context::current();
    self->resume_point = h;
    auto fire = [](void* me) {
        auto* w = static_cast<wait_ready*>(me);
        w->unregister();  // one-shot: the coroutine re-waits if it needs to
        if (w->cancel_.complete_on_home()) detail::wake_local(w->cancel_.coroutine_state());
    };
    try {
        detail::add_fd_waiter(*ctx, fd_, dir_ == direction::write, fire, this);
    } catch (const error& e) {
        early_error_ = e.code().value();
        return false;  // resume at once with the error
    }
    ctx_ = ctx;
    cancel_.arm(std::move(stop_), *ctx, self, this,
                [](void* me) { static_cast<wait_ready*>(me)->unregister(); });
    return true;
}

result<void> wait_ready::await_resume() noexcept {
    if (early_error_) return result<void>::from_errno(early_error_);
    if (cancel_.finish()) return result<void>::from_errno(ECANCELED);
    return {};
}

namespace detail {

namespace {

// Where epoll and poll cannot tell readiness (they always report these ready) and the kernel
// may block on a disk.
bool is_file(int fd) noexcept {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

}  // namespace

bool io_op::writes() const noexcept {
    return fallback_ == fallback::writable || fallback_ == fallback::file_or_writable;
}

void io_op::unregister() noexcept {
    remove_waiter(ctx_, args_.fd, writes());
}

bool io_op::await_suspend(std::coroutine_handle<> h) {
    // Everything happens here rather than in await_ready: the coroutine's state gives the
    // context it runs on, and returning false continues it at once (no suspension).
    co_state* self = require_coroutine("an I/O operation");
    // An operation started after a stop request is not attempted (on every backend alike).
    // `once` operations (close, shutdown, nop) take no stop token and ignore the coroutine's:
    // cleanup of a cancelled coroutine must still happen (a skipped close leaks the fd).
    const bool cancellable = fallback_ != fallback::once;
    if (stop_.stop_requested() || (cancellable && self->stop.stop_requested())) {
        result_ = -ECANCELED;
        return false;
    }
    context& ctx = *self->ctx.load(std::memory_order_relaxed);  // where it runs now
    self->resume_point = h;
    if (ctx.has_io_uring()) {
        cb = on_cqe;
        ctx.add_sqe(
            [](io_uring_sqe* sqe, void* op) {
                auto* me = static_cast<io_op*>(op);
                me->prep_(sqe, me->args_);
            },
            this, this);
        if (cancellable) {
            cancel_.arm(
                std::move(stop_), ctx, self, this,
                [](void* op) {
                    auto* me = static_cast<io_op*>(op);
                    context::current()->cancel_sqe(me);
                },
                true);
        } else {
            cancel_.bind(self);
        }
        return true;
    }
    const bool maybe_file =
        fallback_ == fallback::file_or_readable || fallback_ == fallback::file_or_writable;
    if (fallback_ == fallback::pool || (maybe_file && is_file(args_.fd)))
        return run_on_pool(self, ctx);
    if (byte_read_ && self->drained_fd == args_.fd) {
        // The last read from this fd came back short: the fd was drained then, and this one
        // would most likely fail with EAGAIN. Readiness is level-triggered on every backend,
        // so data that arrived meanwhile is reported by the next wait at once.
        self->drained_fd = -1;
        result_ = -EAGAIN;
    } else {
        result_ = attempt_(args_);  // the fast path: often no suspension at all
        if (fallback_ == fallback::once || (result_ != -EAGAIN && result_ != -EWOULDBLOCK)) {
            note_result(self, result_);
            return false;  // done without registering anything
        }
    }
    try {
        add_fd_waiter(ctx, args_.fd, writes(), on_ready, this);
    } catch (const error& e) {
        result_ = -e.code().value();
        return false;
    }
    ctx_ = &ctx;
    cancel_.arm(std::move(stop_), ctx, self, this,
                [](void* op) { static_cast<io_op*>(op)->unregister(); });
    return true;
}

// Runs the operation's syscall on a worker; the completion hands the result over on the
// coroutine's context. A stop request cancels it only before it started (a transfer that
// happened is reported, as io_uring reports a cancel that came too late).
struct io_op::pool_call final : pool_job {
    pool_call(io_op* op, co_state* co) noexcept : pool_job(true), op_(op), co_(co) {}

    void execute() noexcept override { result_ = op_->attempt_(op_->args_); }
    void complete(bool cancelled) override {
        op_->result_ = cancelled ? -ECANCELED : result_;
        wake_local(co_);  // a BH pass of the coroutine's context
    }

    io_op* op_;
    co_state* co_;
    long result_ = 0;
};

bool io_op::run_on_pool(co_state* self, context& ctx) {
    try {
        ctx.pool().submit_job(std::make_unique<pool_call>(this, self), std::move(stop_),
                              self->stop);
    } catch (const error& e) {
        result_ = -e.code().value();
        return false;
    }
    return true;
}

void io_op::on_cqe(cqe_handler* h) {
    auto* me = static_cast<io_op*>(h);
    me->result_ = h->res;
    // Dispatched by the loop of the context the coroutine suspended on, on its home thread.
    if (me->cancel_.complete_on_home()) wake_local(me->cancel_.coroutine_state());
}

void io_op::on_ready(void* op) {
    auto* me = static_cast<io_op*>(op);
    const long r = me->attempt_(me->args_);
    if (r == -EAGAIN || r == -EWOULDBLOCK) return;  // spurious: stay registered
    me->unregister();
    me->result_ = r;
    me->note_result(me->cancel_.coroutine_state(), r);
    if (me->cancel_.complete_on_home()) wake_local(me->cancel_.coroutine_state());
}

void io_op::note_result(co_state* self, long r) const noexcept {
    if (!byte_read_) return;
    // MSG_PEEK leaves the data queued: a short peek says nothing about the next read.
    const bool drained =
        r > 0 && static_cast<std::size_t>(r) < args_.len && (args_.flags & MSG_PEEK) == 0;
    if (drained) {
        self->drained_fd = args_.fd;
    } else if (self->drained_fd == args_.fd) {
        self->drained_fd = -1;
    }
}

long syscall_result(long r) noexcept {
    return r < 0 ? -errno : r;
}

}  // namespace detail

namespace {

using detail::io_op;
using fallback = io_op::fallback;

#if CORIO_HAS_IO_URING
std::uint64_t file_offset(std::int64_t offset) noexcept {
    return offset < 0 ? static_cast<std::uint64_t>(-1) : static_cast<std::uint64_t>(offset);
}

// The most one read or write transfers on Linux (MAX_RW_COUNT). io_uring's length field has
// 32 bits: a longer buffer is clamped to this partial count, not truncated to a short or zero
// length (a 4 GiB read returning 0 would be a false EOF).
constexpr std::size_t max_transfer = 0x7ffff000;

unsigned sqe_len(std::size_t n) noexcept {
    return static_cast<unsigned>(std::min(n, max_transfer));
}
#endif

// An iovec count both paths take: beyond IOV_MAX the kernel says EINVAL on either (a huge count
// must not wrap around to a small one on its way to `unsigned` or `int`).
unsigned iov_count(std::size_t n) noexcept {
    return n > IOV_MAX ? IOV_MAX + 1 : static_cast<unsigned>(n);
}

// Positional I/O without io_uring, agreeing with io_uring on a pipe or socket: there the
// offset is ignored instead of failing with ESPIPE.
template <class Positional, class Streaming>
long positional_or_not(std::int64_t offset, Positional at, Streaming here) noexcept {
    if (offset >= 0) {
        const long r = at();
        if (r >= 0 || errno != ESPIPE) return detail::syscall_result(r);
    }
    return detail::syscall_result(here());
}

const char* checked_path(const char* path, const char* what) noexcept {
    if (!path) detail::misuse(what);
    return path;
}

#if CORIO_HAS_IO_URING
void prep_statx(io_uring_sqe* sqe, const io_op::args& a) {
    io_uring_prep_statx(sqe, a.fd, static_cast<const char*>(a.buf), a.flags,
                        static_cast<unsigned>(a.len), static_cast<struct ::statx*>(a.aux));
}
#endif

long attempt_statx(io_op::args& a) {
    return detail::syscall_result(::statx(a.fd, static_cast<const char*>(a.buf), a.flags,
                                          static_cast<unsigned>(a.len),
                                          static_cast<struct ::statx*>(a.aux)));
}

}  // namespace

detail::io_awaiter<std::size_t> read(int fd, std::span<std::byte> buf, std::int64_t offset,
                                     std::stop_token stop) {
    return {{.fd = fd, .buf = buf.data(), .len = buf.size(), .offset = offset},
            fallback::file_or_readable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_read(sqe, a.fd, a.buf, sqe_len(a.len), file_offset(a.offset));
            }),
            [](io_op::args& a) {
                return positional_or_not(
                    a.offset, [&] { return ::pread(a.fd, a.buf, a.len, a.offset); },
                    [&] { return ::read(a.fd, a.buf, a.len); });
            },
            std::move(stop),
            true};
}

detail::io_awaiter<std::size_t> write(int fd, std::span<const std::byte> data, std::int64_t offset,
                                      std::stop_token stop) {
    return {{.fd = fd,
             .buf = const_cast<std::byte*>(data.data()),
             .len = data.size(),
             .offset = offset},
            fallback::file_or_writable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_write(sqe, a.fd, a.buf, sqe_len(a.len), file_offset(a.offset));
            }),
            [](io_op::args& a) {
                return positional_or_not(
                    a.offset, [&] { return ::pwrite(a.fd, a.buf, a.len, a.offset); },
                    [&] { return ::write(a.fd, a.buf, a.len); });
            },
            std::move(stop)};
}

detail::io_awaiter<std::size_t> readv(int fd, std::span<const iovec> iov, std::int64_t offset,
                                      std::stop_token stop) {
    // args: buf = the iovec array, len = its entry count.
    return {{.fd = fd,
             .buf = const_cast<iovec*>(iov.data()),
             .len = iov_count(iov.size()),
             .offset = offset},
            fallback::file_or_readable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_readv(sqe, a.fd, static_cast<const iovec*>(a.buf),
                                    static_cast<unsigned>(a.len), file_offset(a.offset));
            }),
            [](io_op::args& a) {
                const auto* v = static_cast<const iovec*>(a.buf);
                const int n = static_cast<int>(a.len);
                return positional_or_not(
                    a.offset, [&] { return ::preadv(a.fd, v, n, a.offset); },
                    [&] { return ::readv(a.fd, v, n); });
            },
            std::move(stop)};
}

detail::io_awaiter<std::size_t> writev(int fd, std::span<const iovec> iov, std::int64_t offset,
                                       std::stop_token stop) {
    // args: buf = the iovec array, len = its entry count.
    return {{.fd = fd,
             .buf = const_cast<iovec*>(iov.data()),
             .len = iov_count(iov.size()),
             .offset = offset},
            fallback::file_or_writable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_writev(sqe, a.fd, static_cast<const iovec*>(a.buf),
                                     static_cast<unsigned>(a.len), file_offset(a.offset));
            }),
            [](io_op::args& a) {
                const auto* v = static_cast<const iovec*>(a.buf);
                const int n = static_cast<int>(a.len);
                return positional_or_not(
                    a.offset, [&] { return ::pwritev(a.fd, v, n, a.offset); },
                    [&] { return ::writev(a.fd, v, n); });
            },
            std::move(stop)};
}

detail::io_awaiter<std::size_t> recv(int fd, std::span<std::byte> buf, int flags,
                                     std::stop_token stop) {
    return {{.fd = fd, .flags = flags, .buf = buf.data(), .len = buf.size()},
            fallback::readable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_recv(sqe, a.fd, a.buf, sqe_len(a.len), a.flags);
            }),
            [](io_op::args& a) {
                return detail::syscall_result(::recv(a.fd, a.buf, a.len, a.flags | MSG_DONTWAIT));
            },
            std::move(stop),
            true};
}

detail::io_awaiter<std::size_t> send(int fd, std::span<const std::byte> data, int flags,
                                     std::stop_token stop) {
    return {{.fd = fd,
             .flags = flags | MSG_NOSIGNAL,
             .buf = const_cast<std::byte*>(data.data()),
             .len = data.size()},
            fallback::writable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_send(sqe, a.fd, a.buf, sqe_len(a.len), a.flags);
            }),
            [](io_op::args& a) {
                return detail::syscall_result(::send(a.fd, a.buf, a.len, a.flags | MSG_DONTWAIT));
            },
            std::move(stop)};
}

detail::io_awaiter<int> accept(int listener, std::stop_token stop) {
    return {{.fd = listener, .flags = SOCK_NONBLOCK | SOCK_CLOEXEC},
            fallback::readable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_accept(sqe, a.fd, nullptr, nullptr, a.flags);
            }),
            [](io_op::args& a) {
                return detail::syscall_result(::accept4(a.fd, nullptr, nullptr, a.flags));
            },
            std::move(stop)};
}

detail::io_awaiter<int> connect(int fd, const sockaddr* addr, socklen_t len, std::stop_token stop) {
    // args: buf = the address, len = its length, flags = 1 once the connect has started.
    return {{.fd = fd, .buf = const_cast<sockaddr*>(addr), .len = len},
            fallback::writable,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_connect(sqe, a.fd, static_cast<const sockaddr*>(a.buf),
                                      static_cast<socklen_t>(a.len));
            }),
            [](io_op::args& a) -> long {
                if (a.flags == 0) {
                    const int r = ::connect(a.fd, static_cast<const sockaddr*>(a.buf),
                                            static_cast<socklen_t>(a.len));
                    if (r == 0) return 0;
                    if (errno != EINPROGRESS) return -errno;
                    a.flags = 1;
                    return -EAGAIN;  // writable once the handshake is over
                }
                int err = 0;
                socklen_t n = sizeof err;
                if (::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &n) < 0) return -errno;
                return -err;
            },
            std::move(stop)};
}

detail::io_awaiter<int> shutdown(int fd, int how) {
    return {{.fd = fd, .flags = how},
            fallback::once,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_shutdown(sqe, a.fd, a.flags);
            }),
            [](io_op::args& a) { return detail::syscall_result(::shutdown(a.fd, a.flags)); },
            {}};
}

detail::io_awaiter<int> close(int fd) {
    return {{.fd = fd},
            fallback::once,
            CORIO_URING_PREP(
                [](io_uring_sqe* sqe, const io_op::args& a) { io_uring_prep_close(sqe, a.fd); }),
            [](io_op::args& a) { return detail::syscall_result(::close(a.fd)); },
            {}};
}

detail::io_awaiter<int> openat(int dirfd, const char* path, int flags, mode_t mode) {
    // args: buf = the path, len = the mode.
    return {{.fd = dirfd,
             .flags = flags | O_CLOEXEC,
             .buf = const_cast<char*>(checked_path(path, "open()/openat() with a null path")),
             .len = mode},
            fallback::pool,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_openat(sqe, a.fd, static_cast<const char*>(a.buf), a.flags,
                                     static_cast<mode_t>(a.len));
            }),
            [](io_op::args& a) {
                return detail::syscall_result(::openat(a.fd, static_cast<const char*>(a.buf),
                                                       a.flags, static_cast<mode_t>(a.len)));
            },
            {}};
}

detail::io_awaiter<int> open(const char* path, int flags, mode_t mode) {
    return openat(AT_FDCWD, path, flags, mode);
}

detail::io_awaiter<void> fsync(int fd) {
    return {{.fd = fd},
            fallback::pool,
            CORIO_URING_PREP(
                [](io_uring_sqe* sqe, const io_op::args& a) { io_uring_prep_fsync(sqe, a.fd, 0); }),
            [](io_op::args& a) { return detail::syscall_result(::fsync(a.fd)); },
            {}};
}

detail::io_awaiter<void> fdatasync(int fd) {
    return {{.fd = fd},
            fallback::pool,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args& a) {
                io_uring_prep_fsync(sqe, a.fd, IORING_FSYNC_DATASYNC);
            }),
            [](io_op::args& a) { return detail::syscall_result(::fdatasync(a.fd)); },
            {}};
}

detail::io_awaiter<void> statx(int dirfd, const char* path, int flags, unsigned mask,
                               struct ::statx* out) {
    if (!out) detail::misuse("statx() with a null result buffer");
    // args: buf = the path, len = the mask, aux = the result.
    return {{.fd = dirfd,
             .flags = flags,
             .buf = const_cast<char*>(checked_path(path, "statx() with a null path")),
             .len = mask,
             .aux = out},
            fallback::pool,
            CORIO_URING_PREP(prep_statx),
            attempt_statx,
            {}};
}

detail::file_size_awaiter::file_size_awaiter(int fd) noexcept
    : io_op({.fd = fd,
             .flags = AT_EMPTY_PATH,
             .buf = const_cast<char*>(""),
             .len = STATX_SIZE,
             .aux = &stx_},
            fallback::pool, CORIO_URING_PREP(prep_statx), attempt_statx, {}) {}

result<std::uint64_t> detail::file_size_awaiter::await_resume() noexcept {
    const long r = finish();
    if (r < 0) return result<std::uint64_t>::from_errno(static_cast<int>(-r));
    return stx_.stx_size;
}

detail::file_size_awaiter file_size(int fd) {
    return detail::file_size_awaiter(fd);
}

detail::io_awaiter<int> nop() {
    return {{.fd = -1},
            fallback::once,
            CORIO_URING_PREP([](io_uring_sqe* sqe, const io_op::args&) { io_uring_prep_nop(sqe); }),
            [](io_op::args&) -> long { return 0; },
            {}};
}

task<result<std::size_t>> write_all(int fd, std::span<const std::byte> data, std::stop_token stop) {
    std::size_t done = 0;
    while (done < data.size()) {
        auto r = co_await write(fd, data.subspan(done), -1, stop);
        if (!r) co_return r.error();
        done += *r;
    }
    co_return done;
}

task<result<std::size_t>> read_exact(int fd, std::span<std::byte> buf, std::stop_token stop) {
    std::size_t done = 0;
    while (done < buf.size()) {
        auto r = co_await read(fd, buf.subspan(done), -1, stop);
        if (!r) co_return r.error();
        if (*r == 0) break;  // EOF: the short count says so
        done += *r;
    }
    co_return done;
}

}  // namespace corio
