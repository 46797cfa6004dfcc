// Zero heap allocations per I/O operation on io_uring: the awaiter is the CQE handler and the
// coroutine frames come from the per-thread pool. Registered for the io_uring backend only.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

using corio::task;

TEST_CASE_FIXTURE(corio::test::loop_fixture,
                  "send and recv through io_uring allocate nothing per operation") {
    REQUIRE(ctx.has_io_uring());
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    auto ping_pong = [](int a, int b, int rounds, std::atomic<long>* measured) -> task<bool> {
        std::byte out[32]{};
        std::byte in[32];
        long before = 0;
        for (int i = 0; i < rounds; ++i) {
            if (i == 100) before = allocations.load();  // after warm-up
            auto s = co_await corio::send(a, std::span(out));
            auto r = co_await corio::recv(b, std::span(in));
            if (!s || !r || *r != sizeof out) co_return false;
        }
        measured->store(allocations.load() - before);
        co_return true;
    };
    std::atomic<long> delta{-1};
    CHECK(corio::run(ctx, ping_pong(sv[0], sv[1], 10100, &delta)));
    CHECK(delta.load() == 0);  // 20000 operations, no heap allocation
    close(sv[0]);
    close(sv[1]);
}

TEST_CASE_FIXTURE(corio::test::loop_fixture,
                  "file operations through io_uring allocate nothing per operation") {
    REQUIRE(ctx.has_io_uring());
    std::string dir = std::filesystem::temp_directory_path() / "corio-io-alloc-XXXXXX";
    REQUIRE(::mkdtemp(dir.data()) != nullptr);
    const int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dirfd >= 0);
    // Per round: openat, writev, readv, fdatasync, fsync, statx, file_size, close. The syncs
    // reach the disk, hence fewer rounds than for sockets.
    auto rounds = [](int dfd, int n, std::atomic<long>* measured) -> task<bool> {
        char out[16] = "fifteen bytes..";
        char a[8], b[8];
        const iovec out_v[] = {{out, 8}, {out + 8, 8}};
        const iovec in_v[] = {{a, sizeof a}, {b, sizeof b}};
        struct ::statx st {};
        long before = 0;
        for (int i = 0; i < n; ++i) {
            if (i == 100) before = allocations.load();  // after warm-up
            auto fd = co_await corio::openat(dfd, "file", O_RDWR | O_CREAT, 0600);
            if (!fd) co_return false;
            auto w = co_await corio::writev(*fd, out_v, 0);
            auto r = co_await corio::readv(*fd, in_v, 0);
            auto ds = co_await corio::fdatasync(*fd);
            auto fs = co_await corio::fsync(*fd);
            auto sx = co_await corio::statx(dfd, "file", 0, STATX_SIZE, &st);
            auto sz = co_await corio::file_size(*fd);
            auto c = co_await corio::close(*fd);
            if (!w || *w != 16 || !r || *r != 16 || !ds || !fs || !sx || !sz || *sz != 16 || !c)
                co_return false;
        }
        measured->store(allocations.load() - before);
        co_return true;
    };
    std::atomic<long> delta{-1};
    CHECK(corio::run(ctx, rounds(dirfd, 600, &delta)));
    CHECK(delta.load() == 0);  // 4000 operations, no heap allocation
    ::close(dirfd);
    std::filesystem::remove_all(dir);
}
