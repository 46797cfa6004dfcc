// fd handlers: level-triggered readiness, removal and replacement during dispatch, bad input.
#include "support/loop_fixture.hpp"

#include <corio/error.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <string>

using corio::context;
using corio::fd_callbacks;
using corio::test::loop_fixture;
using corio::test::test_pipe;

namespace {

struct probe {
    context* ctx = nullptr;
    int reads = 0;
    int writes = 0;
    int fd = -1;
    bool drain = true;
    bool remove_self = false;
    int remove_other = -1;
};

void on_read(void* opaque) {
    auto* p = static_cast<probe*>(opaque);
    ++p->reads;
    if (p->drain) {
        char buf[64];
        while (read(p->fd, buf, sizeof buf) > 0) {
        }
    }
    if (p->remove_self) p->ctx->remove_fd_handler(p->fd);
    if (p->remove_other >= 0) p->ctx->remove_fd_handler(p->remove_other);
}

void on_write(void* opaque) {
    ++static_cast<probe*>(opaque)->writes;
}

int error_of(auto&& fn) {
    try {
        fn();
    } catch (const corio::error& e) {
        return e.code().value();
    }
    return 0;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a read handler runs when its fd becomes readable") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    CHECK_FALSE(ctx.poll(false));
    p.put();
    CHECK(ctx.poll(true));
    CHECK(pr.reads == 1);
    CHECK_FALSE(ctx.poll(false));
    CHECK(ctx.stats().fd_events == 1);
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture, "readiness is level-triggered: an undrained fd is reported again") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    pr.drain = false;
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    p.put();
    for (int i = 1; i <= 5; ++i) {
        CHECK(ctx.poll(true));
        CHECK(pr.reads == i);
    }
    CHECK(p.drain() == 1);
    CHECK_FALSE(ctx.poll(false));
    CHECK(pr.reads == 5);
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture, "a write handler runs while its fd is writable") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.wr};
    ctx.add_fd_handler(p.wr, {.write = on_write}, &pr);
    CHECK(ctx.poll(true));
    CHECK(ctx.poll(true));
    CHECK(pr.writes == 2);
    ctx.remove_fd_handler(p.wr);
}

TEST_CASE_FIXTURE(loop_fixture, "a hang-up reaches the read handler, and a write-only handler") {
    test_pipe p;
    probe reader{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read}, &reader);
    p.close_write();
    CHECK(ctx.poll(true));
    CHECK(reader.reads == 1);
    ctx.remove_fd_handler(p.rd);

    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
    probe writer{&ctx, 0, 0, sv[0]};
    ctx.add_fd_handler(sv[0], {.write = on_write}, &writer);
    close(sv[1]);
    CHECK(ctx.poll(true));
    CHECK(writer.writes >= 1);
    ctx.remove_fd_handler(sv[0]);
    close(sv[0]);
}

TEST_CASE_FIXTURE(loop_fixture, "a handler removed from its own callback is never called again") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    pr.drain = false;
    pr.remove_self = true;
    ctx.add_fd_handler(p.rd, {.read = on_read, .write = nullptr}, &pr);
    p.put();
    CHECK(ctx.poll(true));
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
    CHECK_FALSE(ctx.poll(false));
    CHECK(pr.reads == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a handler removed by another handler in the same pass is not called") {
    test_pipe a;
    test_pipe b;
    probe pa{&ctx, 0, 0, a.rd};
    probe pb{&ctx, 0, 0, b.rd};
    pa.remove_other = b.rd;  // whichever runs first removes the other
    pb.remove_other = a.rd;
    ctx.add_fd_handler(a.rd, {.read = on_read}, &pa);
    ctx.add_fd_handler(b.rd, {.read = on_read}, &pb);
    a.put();
    b.put();
    CHECK(ctx.poll(true));
    CHECK(pa.reads + pb.reads == 1);
    const int survivor = pa.reads ? a.rd : b.rd;
    CHECK(ctx.has_fd_handler(survivor));
    CHECK_FALSE(ctx.has_fd_handler(survivor == a.rd ? b.rd : a.rd));
    ctx.remove_fd_handler(survivor);
}

namespace {
struct replacer {
    context* ctx;
    int fd;
    probe* replacement;
    int runs = 0;
};
void replace_other(void* opaque) {
    auto* r = static_cast<replacer*>(opaque);
    ++r->runs;
    r->ctx->set_fd_handler(r->fd, {.read = on_read}, r->replacement);
}
}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "a handler replaced during dispatch: the old callbacks never run again") {
    test_pipe a;
    test_pipe b;
    probe old_b{&ctx, 0, 0, b.rd};
    probe new_b{&ctx, 0, 0, b.rd};
    replacer r{&ctx, b.rd, &new_b};
    // Register b first so that, in any backend order, a's callback can replace b's before or
    // after b was found ready in this iteration.
    ctx.add_fd_handler(b.rd, {.read = on_read}, &old_b);
    ctx.add_fd_handler(a.rd, {.read = replace_other}, &r);
    a.put();
    b.put();
    ctx.poll(true);
    CHECK(r.runs == 1);
    const int old_before = old_b.reads;
    a.drain();
    ctx.remove_fd_handler(a.rd);
    b.put();
    ctx.poll(true);
    CHECK(old_b.reads == old_before);  // at most the call that happened before the replace
    CHECK(new_b.reads >= 1);
    ctx.remove_fd_handler(b.rd);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "set_fd_handler replaces a registration, add_fd_handler refuses to") {
    test_pipe p;
    probe first{&ctx, 0, 0, p.rd};
    probe second{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read}, &first);
    CHECK(error_of([&] { ctx.add_fd_handler(p.rd, {.read = on_read}, &second); }) == EEXIST);
    ctx.set_fd_handler(p.rd, {.read = on_read}, &second);
    p.put();
    ctx.poll(true);
    CHECK(first.reads == 0);
    CHECK(second.reads == 1);
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "bad input to fd registration is a clear error that changes nothing") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    CHECK(error_of([&] { ctx.add_fd_handler(-1, {.read = on_read}, &pr); }) == EBADF);
    int closed = dup(p.rd);
    close(closed);
    CHECK(error_of([&] { ctx.add_fd_handler(closed, {.read = on_read}, &pr); }) == EBADF);
    CHECK(error_of([&] { ctx.add_fd_handler(p.rd, {}, &pr); }) == EINVAL);
    CHECK(error_of([&] { ctx.remove_fd_handler(p.rd); }) == ENOENT);
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
    try {
        ctx.remove_fd_handler(12345);
        FAIL("no error");
    } catch (const corio::error& e) {
        CHECK(std::string(e.what()).find("12345") != std::string::npos);
    }
    // The context still works.
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    p.put();
    CHECK(ctx.poll(true));
    CHECK(pr.reads == 1);
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture, "a closed fd is EBADF naming set_fd_handler and the fd, always") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    const int closed = dup(p.rd);
    close(closed);
    auto check = [&](auto&& fn) {
        try {
            fn();
            FAIL("no error");
        } catch (const corio::error& e) {
            CHECK(e.code().value() == EBADF);
            const std::string what = e.what();
            CHECK(what.find("set_fd_handler") != std::string::npos);
            CHECK(what.find("fd " + std::to_string(closed)) != std::string::npos);
        }
    };
    check([&] { ctx.add_fd_handler(closed, {.read = on_read}, &pr); });
    check([&] { ctx.set_fd_handler(closed, {.write = on_write}, &pr); });
    // A poll-only handler reaches no kernel interface: the loop still checks the fd itself.
    check([&] {
        ctx.set_fd_handler(closed,
                           {.poll = [](void*) { return false; }, .poll_ready = [](void*) {}}, &pr);
    });
    CHECK_FALSE(ctx.has_fd_handler(closed));
    // Replacing the handler of an fd closed while registered: EBADF, the old one stays.
    const int fd = dup(p.rd);
    ctx.add_fd_handler(fd, {.read = on_read}, &pr);
    close(fd);
    try {
        ctx.set_fd_handler(fd, {.write = on_write}, &pr);
        FAIL("no error");
    } catch (const corio::error& e) {
        CHECK(e.code().value() == EBADF);
        CHECK(std::string(e.what()).find("set_fd_handler(fd " + std::to_string(fd)) !=
              std::string::npos);
    }
    CHECK(ctx.has_fd_handler(fd));
    ctx.remove_fd_handler(fd);
    CHECK_FALSE(ctx.poll(false));
    // Removed, closed, registered again before any wait (epoll still holds the removed entry).
    const int again = dup(p.rd);
    ctx.add_fd_handler(again, {.read = on_read}, &pr);
    ctx.remove_fd_handler(again);
    close(again);
    try {
        ctx.add_fd_handler(again, {.read = on_read}, &pr);
        FAIL("no error");
    } catch (const corio::error& e) {
        CHECK(e.code().value() == EBADF);
        CHECK(std::string(e.what()).find("set_fd_handler(fd " + std::to_string(again)) !=
              std::string::npos);
    }
    CHECK_FALSE(ctx.has_fd_handler(again));
    CHECK_FALSE(ctx.poll(false));
}

TEST_CASE_FIXTURE(loop_fixture, "an fd closed while registered can still be removed") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    const int fd = p.rd;
    p.close_both();
    ctx.remove_fd_handler(fd);
    CHECK_FALSE(ctx.has_fd_handler(fd));
    CHECK_FALSE(ctx.poll(false));
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a nested poll from a read handler does not deliver the same event twice") {
    test_pipe a;
    test_pipe b;
    probe pb{&ctx, 0, 0, b.rd};
    struct nester {
        context* ctx;
        test_pipe* pipe;
        int runs = 0;
    } n{&ctx, &a};
    ctx.add_fd_handler(
        a.rd,
        {.read =
             [](void* o) {
                 auto* self = static_cast<nester*>(o);
                 ++self->runs;
                 self->pipe->drain();
                 self->ctx->poll(false);  // may see b ready again: must not run it twice
             }},
        &n);
    ctx.add_fd_handler(b.rd, {.read = on_read}, &pb);
    a.put();
    b.put();
    ctx.poll(true);
    ctx.poll(false);
    CHECK(n.runs == 1);
    CHECK(pb.reads == 1);
    ctx.remove_fd_handler(a.rd);
    ctx.remove_fd_handler(b.rd);
}

TEST_CASE_FIXTURE(loop_fixture, "an event notifier handler runs after set()") {
    corio::event_notifier en;
    struct state {
        corio::event_notifier* en;
        int runs = 0;
    } st{&en};
    ctx.set_event_notifier(
        en,
        [](void* o) {
            auto* s = static_cast<state*>(o);
            if (s->en->test_and_clear()) ++s->runs;
        },
        &st);
    CHECK_FALSE(ctx.poll(false));
    en.set();
    en.set();
    CHECK(ctx.poll(true));
    CHECK(st.runs == 1);
    CHECK_FALSE(ctx.poll(false));
    ctx.remove_event_notifier(en);
}

TEST_CASE_FIXTURE(loop_fixture, "an event notifier set from another thread wakes a blocked poll") {
    corio::event_notifier en;
    int runs = 0;
    ctx.set_event_notifier(
        en, [](void* o) { ++*static_cast<int*>(o); }, &runs);
    std::thread t([&] { en.set(); });
    while (runs == 0) ctx.poll(true);
    t.join();
    CHECK(en.test_and_clear());  // the callback did not clear it
    ctx.remove_event_notifier(en);
}

// fd_callbacks::once is a hint (epoll arms it one-shot): behaviour must be the same as without.
TEST_CASE_FIXTURE(loop_fixture, "a once handler left registered keeps being called while ready") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd, false};  // never drains: stays readable
    ctx.add_fd_handler(p.rd, {.read = on_read, .once = true}, &pr);
    p.put();
    for (int i = 0; i < 3; ++i) CHECK(ctx.poll(false));
    CHECK(pr.reads == 3);
    ctx.remove_fd_handler(p.rd);
}

TEST_CASE_FIXTURE(loop_fixture, "a once handler removed by its callback and added again") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd, true, true};  // drains, then removes itself
    for (int round = 1; round <= 3; ++round) {
        ctx.add_fd_handler(p.rd, {.read = on_read, .once = true}, &pr);
        CHECK_FALSE(ctx.poll(false));  // nothing to read yet
        p.put();
        CHECK(ctx.poll(false));
        CHECK(pr.reads == round);
        CHECK_FALSE(ctx.has_fd_handler(p.rd));
    }
    // Removed after its event and never added again: still-ready data reports nothing.
    p.put();
    const auto events = ctx.stats().fd_events;
    for (int i = 0; i < 3; ++i) CHECK_FALSE(ctx.poll(false));
    CHECK(ctx.stats().fd_events == events);
}

TEST_CASE_FIXTURE(loop_fixture, "a once handler removed before its event reports nothing more") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read, .once = true}, &pr);
    ctx.remove_fd_handler(p.rd);
    p.put();
    CHECK_FALSE(ctx.poll(false));
    CHECK(pr.reads == 0);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "after a once handler's event, its fd closed and the number reused") {
    test_pipe first;
    probe pr{&ctx, 0, 0, first.rd, true, true};
    ctx.add_fd_handler(first.rd, {.read = on_read, .once = true}, &pr);
    first.put();
    CHECK(ctx.poll(false));
    const int number = first.rd;
    SUBCASE("closed for good") {
        first.close_read();
    }
    SUBCASE("closed while a dup keeps the file open") {
        const int dup_fd = dup(first.rd);
        first.close_read();
        first.put();  // the old file is readable: must not reach the new handler
        pr.fd = dup_fd;
        CHECK_FALSE(ctx.poll(false));
        close(dup_fd);
    }
    // A new pipe whose read end takes the number again.
    int fds[2];
    REQUIRE(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    if (fds[0] != number) {
        REQUIRE(dup2(fds[0], number) == number);
        close(fds[0]);
    }
    pr.fd = number;
    ctx.add_fd_handler(number, {.read = on_read, .once = true}, &pr);
    CHECK_FALSE(ctx.poll(false));
    REQUIRE(write(fds[1], "x", 1) == 1);
    CHECK(ctx.poll(false));
    CHECK(pr.reads == 2);
    close(number);
    close(fds[1]);
}
