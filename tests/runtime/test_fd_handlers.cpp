// fd handlers: level-triggered readiness, removal and replacement during dispatch, bad input.
#include "support/loop_fixture.hpp"

#include <corio/error.hpp>

#include <corio/timer.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>

using corio::context;
using corio::fd_callbacks;
using corio::test::loop_fixture;
using corio::test::test_pipe;
using namespace std::chrono_literals;

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

// Polls (blocking) until a 20 ms timer fires and returns the number of iterations that took:
// a handful, unless something makes every wait return at once (a spinning loop).
std::uint64_t iterations_until_timer(context& ctx) {
    bool fired = false;
    corio::timer t(ctx, corio::clock_type::monotonic, [&] { fired = true; });
    t.arm_after(20ms);
    const std::uint64_t before = ctx.stats().iterations;
    while (!fired) ctx.poll(true);
    return ctx.stats().iterations - before;
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

// Removal and registration of the same fd in quick succession (epoll keeps a removed fd's kernel
// entry until the next wait and reuses it; these hold on every backend).

TEST_CASE_FIXTURE(loop_fixture, "an fd removed and registered again before the next wait") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    ctx.remove_fd_handler(p.rd);
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    CHECK(ctx.has_fd_handler(p.rd));
    p.put();
    CHECK(ctx.poll(true));
    CHECK(pr.reads == 1);
    // Again, now watching the other direction: the write end of the same pipe is writable.
    probe pw{&ctx, 0, 0, p.wr};
    ctx.add_fd_handler(p.wr, {.read = on_read}, &pw);
    ctx.remove_fd_handler(p.wr);
    ctx.add_fd_handler(p.wr, {.write = on_write}, &pw);
    CHECK(ctx.poll(true));
    CHECK(pw.writes >= 1);
    CHECK(pw.reads == 0);
    ctx.remove_fd_handler(p.wr);
    ctx.remove_fd_handler(p.rd);
    CHECK_FALSE(ctx.poll(false));
}

TEST_CASE_FIXTURE(loop_fixture, "a handler removed and registered again from its own callback") {
    test_pipe p;
    struct again {
        context* ctx;
        test_pipe* pipe;
        int reads = 0;
    } a{&ctx, &p};
    // Re-registers itself (same callback) through a static pointer to it.
    static void (*self_cb)(void*) = nullptr;
    self_cb = [](void* o) {
        auto* self = static_cast<again*>(o);
        ++self->reads;
        self->pipe->drain();
        self->ctx->remove_fd_handler(self->pipe->rd);
        if (self->reads < 3) self->ctx->add_fd_handler(self->pipe->rd, {.read = self_cb}, self);
    };
    ctx.add_fd_handler(p.rd, {.read = self_cb}, &a);
    for (int i = 1; i <= 3; ++i) {
        p.put();
        CHECK(ctx.poll(true));
        CHECK(a.reads == i);
    }
    CHECK_FALSE(ctx.has_fd_handler(p.rd));
    p.put();
    CHECK_FALSE(ctx.poll(false));
    CHECK(a.reads == 3);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a removed fd that stays readable is neither reported nor spun on") {
    test_pipe p;
    probe pr{&ctx, 0, 0, p.rd};
    pr.drain = false;
    ctx.add_fd_handler(p.rd, {.read = on_read}, &pr);
    p.put();
    CHECK(ctx.poll(true));
    CHECK(pr.reads == 1);
    ctx.remove_fd_handler(p.rd);  // still readable: level-triggered, it would fire every wait
    const std::uint64_t events = ctx.stats().fd_events;
    CHECK(iterations_until_timer(ctx) <= 10);
    CHECK(ctx.stats().fd_events == events);
    CHECK(pr.reads == 1);
}

TEST_CASE_FIXTURE(loop_fixture, "removal, close, a new file under the same number, registration") {
    test_pipe p;
    test_pipe q;
    const int fd = dup(p.rd);
    REQUIRE(fd >= 0);
    probe pr{&ctx, 0, 0, fd};
    ctx.add_fd_handler(fd, {.read = on_read}, &pr);
    ctx.remove_fd_handler(fd);
    close(fd);
    p.close_both();  // the old pipe is gone altogether
    REQUIRE(dup2(q.rd, fd) == fd);
    ctx.add_fd_handler(fd, {.read = on_read}, &pr);
    CHECK_FALSE(ctx.poll(false));
    q.put();
    CHECK(ctx.poll(true));
    CHECK(pr.reads == 1);
    ctx.remove_fd_handler(fd);
    close(fd);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "removal, close while a dup keeps the file open, same number reused") {
    // The old file stays open through `keep`, so the kernel may keep an entry for it under the
    // old number: nothing it reports may reach the new handler, nor make the loop spin.
    test_pipe old_pipe;
    test_pipe new_pipe;
    const int fd = dup(old_pipe.rd);
    REQUIRE(fd >= 0);
    const int keep = dup(fd);
    REQUIRE(keep >= 0);
    probe first{&ctx, 0, 0, fd};
    ctx.add_fd_handler(fd, {.read = on_read}, &first);
    ctx.remove_fd_handler(fd);
    close(fd);
    REQUIRE(dup2(new_pipe.rd, fd) == fd);
    probe second{&ctx, 0, 0, fd};
    second.drain = false;
    ctx.add_fd_handler(fd, {.read = on_read}, &second);
    old_pipe.put();  // the old file is readable now, and stays so
    const std::uint64_t events = ctx.stats().fd_events;
    CHECK(iterations_until_timer(ctx) <= 10);
    CHECK(ctx.stats().fd_events == events);
    CHECK(second.reads == 0);
    new_pipe.put();
    CHECK(ctx.poll(true));
    CHECK(second.reads >= 1);
    CHECK(first.reads == 0);
    ctx.remove_fd_handler(fd);
    close(fd);
    close(keep);
}

TEST_CASE_FIXTURE(loop_fixture, "removal, close while a dup keeps the file open, no new handler") {
    test_pipe p;
    const int fd = dup(p.rd);
    REQUIRE(fd >= 0);
    const int keep = dup(fd);
    REQUIRE(keep >= 0);
    probe pr{&ctx, 0, 0, fd};
    ctx.add_fd_handler(fd, {.read = on_read}, &pr);
    ctx.remove_fd_handler(fd);
    close(fd);
    p.put();
    const std::uint64_t events = ctx.stats().fd_events;
    CHECK(iterations_until_timer(ctx) <= 10);
    CHECK(ctx.stats().fd_events == events);
    CHECK(pr.reads == 0);
    // The loop goes on working (the number itself may have been taken meanwhile).
    test_pipe q;
    probe pq{&ctx, 0, 0, q.rd};
    ctx.add_fd_handler(q.rd, {.read = on_read}, &pq);
    q.put();
    CHECK(ctx.poll(true));
    CHECK(pq.reads == 1);
    ctx.remove_fd_handler(q.rd);
    close(keep);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a context destroyed with handlers just removed, or still registered") {
    test_pipe p;
    test_pipe q;
    probe pr{nullptr, 0, 0, p.rd};
    {
        context local;
        pr.ctx = &local;
        local.add_fd_handler(p.rd, {.read = on_read}, &pr);
        local.add_fd_handler(q.rd, {.read = on_read}, &pr);
        p.put();
        CHECK(local.poll(true));
        local.remove_fd_handler(p.rd);  // not waited for since
        local.add_fd_handler(p.wr, {.write = on_write}, &pr);
        local.remove_fd_handler(p.wr);
    }
    CHECK(pr.reads == 1);
    // The fds are usable by another context afterwards.
    context other;
    pr.ctx = &other;
    other.add_fd_handler(p.rd, {.read = on_read}, &pr);
    p.put();
    CHECK(other.poll(true));
    CHECK(pr.reads == 2);
    other.remove_fd_handler(p.rd);
}
