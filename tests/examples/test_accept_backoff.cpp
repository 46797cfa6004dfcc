// The accept loops' back-off (examples/common/accept_backoff.hpp): a pure policy, no socket.
#include "common/accept_backoff.hpp"

#include <doctest/doctest.h>

using examples::accept_backoff;
using std::chrono::milliseconds;

TEST_CASE("only a shortage of fds or memory is waited out") {
    for (int err : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) CHECK(accept_backoff::shortage(err));
    for (int err : {ECONNABORTED, EPERM, EPROTO, EINTR}) CHECK(!accept_backoff::shortage(err));
}

TEST_CASE("the waits double from 1 ms to 100 ms, and start again after a success") {
    accept_backoff backoff;
    CHECK(backoff.idle());
    CHECK(!backoff.recovered());
    CHECK(backoff.next() == milliseconds(1));
    CHECK(!backoff.idle());
    for (int wait : {2, 4, 8, 16, 32, 64, 100, 100}) CHECK(backoff.next() == milliseconds(wait));
    CHECK(backoff.recovered());
    CHECK(backoff.idle());
    CHECK(!backoff.recovered());
    CHECK(backoff.next() == milliseconds(1));
}
