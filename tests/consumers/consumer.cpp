// A consumer's first program: a coroutine that sleeps, sends a message through a pipe, reads it
// back and returns its length. Built by both consumers of tests/consumers/run.sh; exits 0 iff
// the result is right.
#include <corio/io.hpp>
#include <corio/sleep.hpp>
#include <corio/spawn.hpp>

#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <span>

corio::task<std::size_t> echo_through_pipe(int rd, int wr) {
    (void)co_await corio::sleep_for(std::chrono::milliseconds(10));
    const char message[] = "hello, corio";
    (void)co_await corio::write(wr, std::as_bytes(std::span(message)));
    std::byte got[sizeof message];
    const corio::result<std::size_t> n = co_await corio::read(rd, got);
    co_return n ? *n : 0;
}

int main() {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    corio::context ctx;
    const std::size_t n = corio::run(ctx, echo_through_pipe(fds[0], fds[1]));
    std::printf("consumer: read %zu bytes on the %s backend\n", n,
                corio::to_string(ctx.backend()).data());
    return n == sizeof "hello, corio" ? 0 : 1;
}
