// File operations: readv/writev and read/write at offsets, open/openat, fsync/fdatasync, statx,
// file_size; errors as values that agree on every backend; cancellation; misuse.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

using corio::result;
using corio::task;
using corio::test::loop_fixture;
using corio::test::test_pipe;

namespace {

// A fresh directory under the system's temporary directory, removed with its contents.
struct temp_dir {
    std::string path;
    int fd = -1;
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "corio-file-io-XXXXXX");
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
        fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(fd >= 0);
    }
    ~temp_dir() {
        ::close(fd);
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const char* name) const { return path + "/" + name; }
};

iovec iov(std::string& s) {
    return {s.data(), s.size()};
}
iovec iov(const char* s) {
    return {const_cast<char*>(s), std::strlen(s)};
}

// The errno of a result, 0 for success.
template <class T>
int err(const result<T>& r) {
    return r.error().value();
}

int closed_fd() {
    const int fd = ::dup(0);
    ::close(fd);
    return fd;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "open creates a file close-on-exec; writev at offsets reads back") {
    temp_dir dir;
    const std::string name = dir.file("data");
    auto [fd_flags, written, tail_written, first, second, tail, past_end, size] =
        corio::run(ctx,
                   [](const char* path)
                       -> task<std::tuple<int, std::size_t, std::size_t, std::string, std::string,
                                          std::string, std::size_t, std::uint64_t>> {
                       auto fd = co_await corio::open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
                       REQUIRE(fd);
                       const int fd_flags = ::fcntl(*fd, F_GETFD);
                       const iovec out[] = {iov("hello"), iov(", "), iov("world")};
                       auto w = co_await corio::writev(*fd, out, 0);
                       const iovec tail_out[] = {iov("tail")};
                       auto wt = co_await corio::writev(*fd, tail_out, 100);
                       std::string a(5, '\0'), b(7, '\0'), t(8, '\0');
                       const iovec in[] = {iov(a), iov(b)};
                       auto r = co_await corio::readv(*fd, in, 0);
                       const iovec tail_in[] = {iov(t)};
                       auto rt = co_await corio::readv(*fd, tail_in, 100);
                       auto end = co_await corio::readv(*fd, tail_in, 104);
                       auto size = co_await corio::file_size(*fd);
                       REQUIRE((co_await corio::close(*fd)));
                       REQUIRE((w && wt && r && rt && end && size));
                       b.resize(*r - a.size());
                       t.resize(*rt);
                       co_return std::tuple{fd_flags, *w, *wt, a, b, t, *end, *size};
                   }(name.c_str()));
    CHECK((fd_flags & FD_CLOEXEC) != 0);
    CHECK(written == 12);
    CHECK(tail_written == 4);
    CHECK(first == "hello");
    CHECK(second == ", world");
    CHECK(tail == "tail");
    CHECK(past_end == 0);  // end of file
    CHECK(size == 104);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "read and write at offsets leave the position; -1 uses and advances it") {
    temp_dir dir;
    const std::string name = dir.file("pos");
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    auto [at_offset, at_position, position] =
        corio::run(ctx, [](int f) -> task<std::tuple<std::string, std::string, off_t>> {
            const std::string data = "0123456789";
            REQUIRE((co_await corio::write(f, std::as_bytes(std::span(data)), 0)));
            const std::string more = "abc";
            REQUIRE((co_await corio::write(f, std::as_bytes(std::span(more)), 7)));
            std::string a(4, '\0');
            auto r = co_await corio::read(f, std::as_writable_bytes(std::span(a)), 6);
            REQUIRE(r);
            a.resize(*r);
            // Positional I/O left the position at 0: -1 reads from there, and advances it.
            std::string b(3, '\0');
            std::string c(3, '\0');
            const iovec in[] = {iov(b), iov(c)};
            auto rv = co_await corio::readv(f, in, -1);
            REQUIRE(rv);
            co_return std::tuple{a, b + c, ::lseek(f, 0, SEEK_CUR)};
        }(fd));
    ::close(fd);
    CHECK(at_offset == "6abc");
    CHECK(at_position == "012345");
    CHECK(position == 6);
}

TEST_CASE_FIXTURE(loop_fixture, "readv stops short at the end of the file") {
    temp_dir dir;
    const std::string name = dir.file("short");
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(::write(fd, "xyz", 3) == 3);
    const std::size_t n = corio::run(ctx, [](int f) -> task<std::size_t> {
        char a[2], b[5];
        const iovec in[] = {{a, sizeof a}, {b, sizeof b}};
        auto r = co_await corio::readv(f, in, 0);
        co_return r ? *r : 0;
    }(fd));
    ::close(fd);
    CHECK(n == 3);
}

TEST_CASE_FIXTURE(loop_fixture, "fsync and fdatasync succeed on a file, EINVAL on a pipe") {
    temp_dir dir;
    const std::string name = dir.file("synced");
    test_pipe p;
    auto [all, data, pipe_all, pipe_data, bad_all, bad_data] =
        corio::run(ctx, [](const char* path, int pipe_fd, int bad) -> task<std::array<int, 6>> {
            auto fd = co_await corio::open(path, O_WRONLY | O_CREAT, 0600);
            REQUIRE(fd);
            const iovec out[] = {iov("durable")};
            REQUIRE((co_await corio::writev(*fd, out)));
            const int a = err(co_await corio::fsync(*fd));
            REQUIRE((co_await corio::writev(*fd, out)));
            const int d = err(co_await corio::fdatasync(*fd));
            ::close(*fd);
            co_return std::array{a,
                                 d,
                                 err(co_await corio::fsync(pipe_fd)),
                                 err(co_await corio::fdatasync(pipe_fd)),
                                 err(co_await corio::fsync(bad)),
                                 err(co_await corio::fdatasync(bad))};
        }(name.c_str(), p.wr, closed_fd()));
    CHECK(all == 0);
    CHECK(data == 0);
    CHECK(pipe_all == EINVAL);
    CHECK(pipe_data == EINVAL);
    CHECK(bad_all == EBADF);
    CHECK(bad_data == EBADF);
}

TEST_CASE_FIXTURE(loop_fixture, "statx reports size and mode, by path, relative path and fd") {
    temp_dir dir;
    const std::string name = dir.file("stat");
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::fchmod(fd, 0640) == 0);  // independent of the umask
    REQUIRE(::write(fd, "12345", 5) == 5);
    struct ::statx by_path {};
    struct ::statx relative {};
    struct ::statx by_fd {};
    const bool ok = corio::run(ctx,
                               [](const char* path, int dirfd, int f, struct ::statx* a,
                                  struct ::statx* b, struct ::statx* c) -> task<bool> {
                                   const unsigned mask = STATX_SIZE | STATX_MODE;
                                   auto ra = co_await corio::statx(AT_FDCWD, path, 0, mask, a);
                                   auto rb = co_await corio::statx(dirfd, "stat", 0, mask, b);
                                   auto rc = co_await corio::statx(f, "", AT_EMPTY_PATH, mask, c);
                                   co_return ra&& rb&& rc;
                               }(name.c_str(), dir.fd, fd, &by_path, &relative, &by_fd));
    ::close(fd);
    REQUIRE(ok);
    for (const struct ::statx* st : {&by_path, &relative, &by_fd}) {
        CHECK((st->stx_mask & (STATX_SIZE | STATX_MODE)) == (STATX_SIZE | STATX_MODE));
        CHECK(st->stx_size == 5);
        CHECK(S_ISREG(st->stx_mode));
        CHECK((st->stx_mode & 07777) == 0640);
    }
}

TEST_CASE_FIXTURE(loop_fixture, "openat opens relative to a directory fd") {
    temp_dir dir;
    auto [created, reopened, content] =
        corio::run(ctx, [](int dirfd) -> task<std::tuple<bool, bool, std::string>> {
            auto w = co_await corio::openat(dirfd, "inner", O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (!w) co_return std::tuple{false, false, std::string()};
            const iovec out[] = {iov("relative")};
            REQUIRE((co_await corio::writev(*w, out)));
            REQUIRE((co_await corio::close(*w)));
            auto r = co_await corio::openat(dirfd, "inner", O_RDONLY);
            if (!r) co_return std::tuple{true, false, std::string()};
            std::string got(16, '\0');
            auto n = co_await corio::read(*r, std::as_writable_bytes(std::span(got)));
            ::close(*r);
            got.resize(n ? *n : 0);
            co_return std::tuple{true, true, got};
        }(dir.fd));
    CHECK(created);
    CHECK(reopened);
    CHECK(content == "relative");
    CHECK(std::filesystem::exists(dir.file("inner")));
}

TEST_CASE_FIXTURE(loop_fixture, "bad input gives the same errors, as values, on every backend") {
    temp_dir dir;
    const std::string existing = dir.file("existing");
    const int file = ::open(existing.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(file >= 0);
    const std::string missing = dir.file("missing");
    auto errors = corio::run(
        ctx,
        [](int dirfd, int f, const char* exists, const char* gone,
           int bad) -> task<std::vector<int>> {
            std::vector<int> e;
            struct ::statx st {};
            char byte;
            const iovec one[] = {{&byte, 1}};
            std::vector<iovec> too_many(IOV_MAX + 1, iovec{&byte, 1});
            e.push_back(err(co_await corio::open(gone, O_RDONLY)));                     // ENOENT
            e.push_back(err(co_await corio::openat(dirfd, "missing", O_RDONLY)));       // ENOENT
            e.push_back(err(co_await corio::open(exists, O_RDWR | O_CREAT | O_EXCL)));  // EEXIST
            e.push_back(err(co_await corio::openat(bad, "x", O_RDONLY)));               // EBADF
            e.push_back(err(co_await corio::openat(f, "x", O_RDONLY)));                 // ENOTDIR
            // O_TMPFILE needs write access.
            e.push_back(err(co_await corio::openat(dirfd, ".", O_TMPFILE | O_RDONLY, 0600)));
            e.push_back(err(co_await corio::readv(bad, one, 0)));                         // EBADF
            e.push_back(err(co_await corio::writev(bad, one)));                           // EBADF
            e.push_back(err(co_await corio::readv(f, too_many, 0)));                      // EINVAL
            e.push_back(err(co_await corio::writev(f, too_many, 0)));                     // EINVAL
            e.push_back(err(co_await corio::statx(AT_FDCWD, gone, 0, STATX_SIZE, &st)));  // ENOENT
            e.push_back(err(co_await corio::statx(bad, "", AT_EMPTY_PATH, STATX_SIZE, &st)));
            e.push_back(err(co_await corio::statx(f, "", -1, STATX_SIZE, &st)));  // EINVAL
            e.push_back(err(co_await corio::statx(f, "", AT_EMPTY_PATH, STATX__RESERVED, &st)));
            e.push_back(err(co_await corio::file_size(bad)));  // EBADF
            co_return e;
        }(dir.fd, file, existing.c_str(), missing.c_str(), closed_fd()));
    ::close(file);
    const std::vector<int> expected = {ENOENT, ENOENT, EEXIST, EBADF, ENOTDIR, EINVAL, EBADF, EBADF,
                                       EINVAL, EINVAL, ENOENT, EBADF, EINVAL,  EINVAL, EBADF};
    CHECK(errors == expected);
}

TEST_CASE_FIXTURE(loop_fixture, "an empty iovec span transfers 0 bytes on a file and a pipe") {
    temp_dir dir;
    const std::string name = dir.file("empty");
    const int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    test_pipe p;  // empty: a read that waited would hang (the watchdog catches it)
    auto results = corio::run(ctx, [](int f, int rd, int wr) -> task<std::vector<long>> {
        std::vector<long> n;
        char nothing[1];
        const iovec empty_buffers[] = {{nothing, 0}, {nothing, 0}};
        for (std::span<const iovec> v :
             {std::span<const iovec>(), std::span<const iovec>(empty_buffers)}) {
            for (auto r : {co_await corio::readv(f, v, 0), co_await corio::writev(f, v, 0),
                           co_await corio::readv(f, v), co_await corio::writev(f, v),
                           co_await corio::readv(rd, v), co_await corio::writev(wr, v)}) {
                n.push_back(r ? static_cast<long>(*r) : -err(r));
            }
        }
        co_return n;
    }(fd, p.rd, p.wr));
    ::close(fd);
    CHECK(results == std::vector<long>(12, 0));
}

TEST_CASE_FIXTURE(loop_fixture, "readv and writev ignore an offset on a pipe on every backend") {
    test_pipe p;
    auto [wrote, got] = corio::run(ctx, [](int rd, int wr) -> task<std::pair<long, std::string>> {
        const iovec out[] = {iov("pi"), iov("pe")};
        auto w = co_await corio::writev(wr, out, 0);
        std::string a(2, '\0'), b(8, '\0');
        const iovec in_a[] = {iov(a)};
        const iovec in_b[] = {iov(b)};
        auto r1 = co_await corio::readv(rd, in_a, 5);
        auto r2 = co_await corio::readv(rd, in_b, 7);
        if (!w || !r1 || !r2) co_return std::pair{-1L, std::string()};
        b.resize(*r2);
        co_return std::pair{static_cast<long>(*w), a + b};
    }(p.rd, p.wr));
    CHECK(wrote == 4);
    CHECK(got == "pipe");
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a readv waiting on a pipe is cancelled by a stop request; later data is kept") {
    test_pipe p;
    corio::test::remote_stop stop{ctx};
    const int e =
        corio::run(ctx, [](int fd, std::stop_token st, std::atomic<bool>& armed) -> task<int> {
            char buf[8];
            const iovec in[] = {{buf, sizeof buf}};
            armed.store(true);
            auto r = co_await corio::readv(fd, in, -1, st);
            co_return err(r);
        }(p.rd, stop.token(), stop.armed));
    stop.join();
    CHECK(e == ECANCELED);
    p.put('k');
    const std::string later = corio::run(ctx, [](int fd) -> task<std::string> {
        char c = 0;
        const iovec in[] = {{&c, 1}};
        auto r = co_await corio::readv(fd, in);
        co_return r&&* r == 1 ? std::string(1, c) : std::string("none");
    }(p.rd));
    CHECK(later == "k");
}

TEST_CASE_FIXTURE(loop_fixture, "a readv or writev with a stopped token does nothing") {
    test_pipe p;
    p.put('s');
    std::stop_source source;
    source.request_stop();
    auto [r, w] =
        corio::run(ctx, [](int rd, int wr, std::stop_token st) -> task<std::pair<int, int>> {
            char c;
            const iovec in[] = {{&c, 1}};
            const int re = err(co_await corio::readv(rd, in, -1, st));
            const int we = err(co_await corio::writev(wr, in, -1, st));
            co_return std::pair{re, we};
        }(p.rd, p.wr, source.get_token()));
    CHECK(r == ECANCELED);
    CHECK(w == ECANCELED);
    CHECK(p.drain() == 1);  // the byte is still there
}

TEST_CASE("statx with a null result buffer aborts with a clear message") {
    const std::string msg = corio::test::abort_message_of(
        [] { (void)corio::statx(AT_FDCWD, ".", 0, STATX_SIZE, nullptr); });
    CHECK(msg.find("statx() with a null result buffer") != std::string::npos);
}

TEST_CASE("open and statx with a null path abort with a clear message") {
    const std::string open_msg =
        corio::test::abort_message_of([] { (void)corio::open(nullptr, O_RDONLY); });
    CHECK(open_msg.find("open()/openat() with a null path") != std::string::npos);
    const std::string statx_msg = corio::test::abort_message_of([] {
        struct ::statx st;
        (void)corio::statx(AT_FDCWD, nullptr, 0, STATX_SIZE, &st);
    });
    CHECK(statx_msg.find("statx() with a null path") != std::string::npos);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a file operation that blocks in the kernel does not block the loop") {
    // Opening a FIFO for reading waits until a writer opens it. On io_uring the kernel runs the
    // open asynchronously; on epoll and poll it runs on the thread pool. Either way other
    // coroutines keep running meanwhile (inline, this test would hang until its watchdog).
    temp_dir dir;
    const std::string fifo = dir.file("fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto reader = corio::spawn(ctx, [](const char* path) -> task<std::string> {
        result<int> fd = co_await corio::open(path, O_RDONLY);
        if (!fd) co_return fd.error().message();
        std::array<std::byte, 16> buf{};
        result<std::size_t> n = co_await corio::read(*fd, buf);
        (void)co_await corio::close(*fd);
        if (!n) co_return n.error().message();
        co_return std::string(reinterpret_cast<const char*>(buf.data()), *n);
    }(fifo.c_str()));
    bool other_ran = false;
    auto other = corio::spawn(ctx, [](bool& ran) -> task<void> {
        for (int i = 0; i < 3; ++i) (void)co_await corio::sleep_for(std::chrono::milliseconds(1));
        ran = true;
    }(other_ran));
    ctx.run_until([&] { return other.done(); });
    CHECK(other_ran);
    CHECK_FALSE(reader.done());  // still waiting for a writer
    std::thread writer([&] {
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, "fifo", 4) == 4);
        ::close(fd);
    });
    ctx.run_until([&] { return reader.done(); });
    writer.join();
    CHECK(reader.get() == "fifo");
}

TEST_CASE_FIXTURE(loop_fixture, "regular-file reads and writes never run on the loop thread") {
    // With io_uring the kernel does them; without it, the thread pool: the loop thread makes
    // no read/write call on a regular file (it would block it on a slow disk).
    temp_dir dir;
    const std::string name = dir.file("f");
    const bool uring = ctx.has_io_uring();
    const auto [written, read_back, pool_jobs] = corio::run(
        ctx,
        [](const char* path,
           corio::context& c) -> task<std::tuple<std::size_t, std::string, std::uint64_t>> {
            const std::uint64_t before = c.pool().stats().completed;
            result<int> fd = co_await corio::open(path, O_RDWR | O_CREAT, 0600);
            REQUIRE(fd.ok());
            const std::string text = "through the pool";
            result<std::size_t> w = co_await corio::write(*fd, std::as_bytes(std::span(text)), 0);
            std::array<std::byte, 32> buf{};
            result<std::size_t> r = co_await corio::read(*fd, buf, 0);
            (void)co_await corio::close(*fd);
            co_return std::tuple{w.value(),
                                 std::string(reinterpret_cast<const char*>(buf.data()), r.value()),
                                 c.pool().stats().completed - before};
        }(name.c_str(), ctx));
    CHECK(written == 16);
    CHECK(read_back == "through the pool");
    CHECK(pool_jobs == (uring ? 0U : 3U));  // open, write, read
}
