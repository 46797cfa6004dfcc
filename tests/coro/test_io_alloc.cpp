// Zero heap allocations per I/O operation on io_uring: the awaiter is the CQE handler and the
// coroutine frames come from the per-thread pool. Registered for the io_uring backend only.
#include "support/loop_fixture.hpp"

#include <corio/io.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <atomic>
#include <cstdlib>
#include <new>

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
