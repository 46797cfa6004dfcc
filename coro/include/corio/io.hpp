// corio I/O awaitables: readiness waits; read/write/recv/send/accept/connect on fds; and file
// operations (readv/writev, open/openat, fsync/fdatasync, statx).
//
// Each operation is one awaiter object living in the awaiting frame. With io_uring it is one
// SQE through context::add_sqe and the awaiter *is* the cqe_handler: no allocation, no syscall
// beyond the loop's batched io_uring_enter. On epoll and poll, socket and pipe operations first
// try the non-blocking syscall (no suspension at all when it succeeds) and otherwise retry from
// a temporary fd handler each time the fd is ready (one reader and one writer may wait on the
// same fd at once, see wait_ready); work that may block on a disk — read,
// write, readv, writev on a regular file or block device (one fstat per operation tells),
// open, fsync, statx — runs on the context's thread pool (one job allocation), so the loop
// thread never blocks. Application code is the same on every backend.
// On epoll/poll the fd must be non-blocking for read/write/accept on sockets and pipes (the
// socket helpers make it so; recv/send add MSG_DONTWAIT themselves).
#pragma once

#include <corio/cancel.hpp>
#include <corio/context.hpp>
#include <corio/cqe_handler.hpp>
#include <corio/result.hpp>
#include <corio/task.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stop_token>

namespace corio {

/// `co_await wait_readable(fd[, stop])` / `wait_writable`: resumes the running coroutine, on
/// its current context, once `fd` is readable (or hung up / in error) or writable. Registers a
/// temporary fd handler for the duration, shared with at most one coroutine waiting on `fd` in
/// the other direction (this and the readiness path of the operations below: one coroutine
/// may recv while another sends on the same socket); a second wait in the same direction, or
/// a wait on an fd with a handler of its own on this context, gives EEXIST; a negative or
/// closed fd gives EBADF; a stop request gives ECANCELED (from any thread; the handler is
/// removed or left to the other direction). Errors are values, never exceptions. No allocation
/// beyond what the backend needs to register the fd (and, once per fd number and thread, the
/// entry that pairs the two directions).
class wait_ready {
public:
    enum class direction : unsigned char { read, write };

    wait_ready(int fd, direction dir, std::stop_token stop = {}) noexcept
        : fd_(fd), dir_(dir), stop_(std::move(stop)) {}
    ~wait_ready();
    wait_ready(const wait_ready&) = delete;
    wait_ready& operator=(const wait_ready&) = delete;

    bool await_ready() noexcept;
    bool await_suspend(std::coroutine_handle<> h);
    result<void> await_resume() noexcept;

private:
    void unregister() noexcept;

    detail::cancel_point cancel_;
    int fd_;
    direction dir_;
    std::stop_token stop_;
    context* ctx_ = nullptr;  // where the handler is registered, while it is
    int early_error_ = 0;     // failed before suspending (errno)
};

inline wait_ready wait_readable(int fd, std::stop_token stop = {}) {
    return {fd, wait_ready::direction::read, std::move(stop)};
}
inline wait_ready wait_writable(int fd, std::stop_token stop = {}) {
    return {fd, wait_ready::direction::write, std::move(stop)};
}

namespace detail {

/// The state machine behind every read/write-style operation (see the file comment).
class io_op : public cqe_handler {
public:
    /// The operation's arguments; each operation documents what it keeps where.
    struct args {
        int fd = -1;
        int flags = 0;
        void* buf = nullptr;
        std::size_t len = 0;
        std::int64_t offset = 0;
        void* aux = nullptr;  // a second pointer (statx: the result)
    };
    using prep_fn = void (*)(io_uring_sqe* sqe, const args& a);
    /// The non-blocking syscall: its result, or -errno (-EAGAIN: wait for readiness, retry).
    /// May keep state in `a` between attempts (connect: started, then check SO_ERROR).
    using attempt_fn = long (*)(args& a);
    /// What happens without io_uring: `readable`/`writable`: a non-blocking attempt, retried
    /// when the fd is ready that way; `file_or_*`: the same, unless the fd is a regular file
    /// or a block device, which go to the thread pool; `once`: one inline attempt, final (quick
    /// calls: close, shutdown); `pool`: the thread pool (file-system work: open, fsync, statx).
    enum class fallback : unsigned char {
        readable,
        writable,
        file_or_readable,
        file_or_writable,
        once,
        pool
    };

    /// `byte_read`: the result counts bytes out of `len` read from the fd (read, recv), and one
    /// short of `len` means the fd was drained; see co_state::drained_fd.
    io_op(args a, fallback how, prep_fn prep, attempt_fn attempt, std::stop_token stop,
          bool byte_read = false) noexcept
        : args_(a),
          fallback_(how),
          byte_read_(byte_read),
          prep_(prep),
          attempt_(attempt),
          stop_(std::move(stop)) {}
    ~io_op() {
        if (ctx_) unregister();
    }
    io_op(const io_op&) = delete;
    io_op& operator=(const io_op&) = delete;

    bool await_ready() const noexcept { return false; }  // await_suspend decides
    bool await_suspend(std::coroutine_handle<> h);

protected:
    /// After resumption: the result, or -errno.
    long finish() noexcept {
        const bool stopped = cancel_.finish();
        // With io_uring (cb set) the CQE's own result says ECANCELED if the cancel was in time.
        if (stopped && !cb) return -ECANCELED;
        return result_;
    }

private:
    struct pool_call;  // the thread-pool job of a fallback::pool (or file) operation

    static void on_cqe(cqe_handler* self);
    static void on_ready(void* self);
    void unregister() noexcept;
    bool writes() const noexcept;  // waits for writability (not readability) without io_uring
    bool run_on_pool(co_state* self, context& ctx);
    void note_result(co_state* self, long r) const noexcept;

    detail::cancel_point cancel_;
    args args_;
    fallback fallback_;
    bool byte_read_;
    prep_fn prep_;
    attempt_fn attempt_;
    std::stop_token stop_;
    context* ctx_ = nullptr;  // fallback only: where the fd handler is registered, while it is
    long result_ = 0;
};

template <class T>
class io_awaiter : public io_op {
public:
    using io_op::io_op;
    result<T> await_resume() noexcept {
        const long r = finish();
        if (r < 0) return result<T>::from_errno(static_cast<int>(-r));
        return static_cast<T>(r);
    }
};

template <>
class io_awaiter<void> : public io_op {
public:
    using io_op::io_op;
    result<void> await_resume() noexcept {
        const long r = finish();
        if (r < 0) return result<void>::from_errno(static_cast<int>(-r));
        return {};
    }
};

/// `file_size`'s awaiter: a statx whose result buffer lives in the awaiter.
class file_size_awaiter : public io_op {
public:
    explicit file_size_awaiter(int fd) noexcept;
    result<std::uint64_t> await_resume() noexcept;

private:
    struct ::statx stx_;
};

}  // namespace detail

/// `co_await read(fd, buf[, offset][, stop])` → bytes read (0 at end of file). `offset` -1 (any
/// negative value) uses and advances the file position; on a pipe or socket the offset is
/// ignored (as io_uring does; no ESPIPE). Partial reads are reported as such; see read_exact.
detail::io_awaiter<std::size_t> read(int fd, std::span<std::byte> buf, std::int64_t offset = -1,
                                     std::stop_token stop = {});
/// `co_await write(fd, data[, offset][, stop])` → bytes written (possibly fewer; see write_all).
/// `offset` as for read.
detail::io_awaiter<std::size_t> write(int fd, std::span<const std::byte> data,
                                      std::int64_t offset = -1, std::stop_token stop = {});
/// `co_await recv(fd, buf[, flags][, stop])` → bytes received (0: the peer shut down).
detail::io_awaiter<std::size_t> recv(int fd, std::span<std::byte> buf, int flags = 0,
                                     std::stop_token stop = {});
/// `co_await send(fd, data[, flags][, stop])` → bytes sent; never raises SIGPIPE (EPIPE).
detail::io_awaiter<std::size_t> send(int fd, std::span<const std::byte> data, int flags = 0,
                                     std::stop_token stop = {});
/// `co_await accept(listener[, stop])` → a connected socket, O_NONBLOCK | O_CLOEXEC.
detail::io_awaiter<int> accept(int listener, std::stop_token stop = {});
/// `co_await connect(fd, addr, len[, stop])`: connects a (non-blocking) socket; ECONNREFUSED and
/// friends are values. `addr` must stay valid until the operation completes.
detail::io_awaiter<int> connect(int fd, const sockaddr* addr, socklen_t len,
                                std::stop_token stop = {});
/// `co_await shutdown(fd, how)`: SHUT_RD, SHUT_WR or SHUT_RDWR.
detail::io_awaiter<int> shutdown(int fd, int how);
/// `co_await close(fd)`: closes `fd` (through io_uring where available).
detail::io_awaiter<int> close(int fd);

/// `co_await nop()`: an io_uring NOP round trip through the loop (0 at once elsewhere); for
/// measuring the coroutine layer's overhead.
detail::io_awaiter<int> nop();

/// `co_await readv(fd, iov[, offset][, stop])` → bytes read into the buffers of `iov`, in order
/// (0 at end of file, or when the buffers hold no bytes at all — also for an empty `iov`).
/// `offset` as for read. The iovec array and its buffers must stay valid until the operation
/// completes (they do while it is awaited); more than IOV_MAX entries give EINVAL.
/// A stop request cancels a read that waits (a pipe, a socket) with ECANCELED; a read from a
/// regular file is usually done before a cancel can catch it, and then reports its bytes.
detail::io_awaiter<std::size_t> readv(int fd, std::span<const iovec> iov, std::int64_t offset = -1,
                                      std::stop_token stop = {});
/// `co_await writev(fd, iov[, offset][, stop])` → bytes written from the buffers of `iov`, in
/// order (possibly fewer). Same rules as readv.
detail::io_awaiter<std::size_t> writev(int fd, std::span<const iovec> iov, std::int64_t offset = -1,
                                       std::stop_token stop = {});

/// `co_await openat(dirfd, path, flags[, mode])` → a new fd for `path`, relative to the directory
/// `dirfd` (or AT_FDCWD; ignored for an absolute path). `flags` and `mode` as for openat(2),
/// **plus O_CLOEXEC always** (every fd corio opens is close-on-exec; clear it with fcntl if a
/// child process must inherit the fd). `path` must stay valid until the operation completes (a
/// string in the awaiting frame, or a temporary in the same full expression as the co_await).
/// Errors are values (ENOENT, EACCES, EEXIST, EBADF, ENOTDIR, EINVAL for contradictory flags);
/// a null `path` aborts (misuse). Not cancellable. Without io_uring it runs on the context's
/// thread pool (see the file comment): the loop thread never blocks in it.
detail::io_awaiter<int> openat(int dirfd, const char* path, int flags, mode_t mode = 0);
/// `co_await open(path, flags[, mode])`: openat(AT_FDCWD, path, flags, mode) — O_CLOEXEC added.
detail::io_awaiter<int> open(const char* path, int flags, mode_t mode = 0);

/// `co_await fsync(fd)`: flushes the file's data and metadata to stable storage (fsync(2)).
/// EBADF for a bad fd, EINVAL for an fd that cannot be synced (a pipe, a socket). Not
/// cancellable; without io_uring it runs on the context's thread pool.
detail::io_awaiter<void> fsync(int fd);
/// `co_await fdatasync(fd)`: like fsync, but only the metadata needed to read the data back
/// (fdatasync(2); IORING_FSYNC_DATASYNC).
detail::io_awaiter<void> fdatasync(int fd);

/// `co_await statx(dirfd, path, flags, mask, out)`: fills `*out` as statx(2) does (`mask`: the
/// STATX_* fields wanted; check `out->stx_mask` for those the file system provided). For the
/// fd itself, pass `path` "" and AT_EMPTY_PATH in `flags`. `path` and `out` must stay valid
/// until the operation completes. Errors are values (ENOENT, EBADF, EINVAL for unknown flags
/// or mask bits); a null `path` or `out` aborts (misuse). Not cancellable; without io_uring it
/// runs on the context's thread pool.
detail::io_awaiter<void> statx(int dirfd, const char* path, int flags, unsigned mask,
                               struct ::statx* out);
/// `co_await file_size(fd)` → the size in bytes of the file open as `fd` (a statx of the fd for
/// STATX_SIZE; the result buffer lives in the awaiter). Errors as for statx.
detail::file_size_awaiter file_size(int fd);

/// Writes all of `data` (looping over partial writes): the byte count, or the first error.
task<result<std::size_t>> write_all(int fd, std::span<const std::byte> data,
                                    std::stop_token stop = {});
/// Reads exactly `buf.size()` bytes (looping over partial reads); a short count means EOF came
/// first. Errors are returned as such.
task<result<std::size_t>> read_exact(int fd, std::span<std::byte> buf, std::stop_token stop = {});

}  // namespace corio
