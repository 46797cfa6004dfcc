// The io_uring submission path: add_sqe / cqe_handler, batching, full rings, multishot,
// cancellation and destruction with requests in flight. Registered for the io_uring backend
// only (the program skips, exit 77, where io_uring cannot be set up).
#include "support/loop_fixture.hpp"

#include <doctest/doctest.h>

#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

using corio::context;
using corio::cqe_handler;
using corio::test::loop_fixture;

namespace {

// A cqe_handler that records every completion it receives.
struct recorder : cqe_handler {
    std::vector<std::int32_t> results;
    std::vector<std::uint32_t> flags_seen;
    std::thread::id thread;
    recorder() {
        cb = [](cqe_handler* self) {
            auto* r = static_cast<recorder*>(self);
            r->results.push_back(r->res);
            r->flags_seen.push_back(r->flags);
            r->thread = std::this_thread::get_id();
        };
    }
};

void prep_nop(io_uring_sqe* sqe, void*) {
    io_uring_prep_nop(sqe);
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "add_sqe runs the handler once, on the home thread, from poll") {
    REQUIRE(ctx.has_io_uring());
    recorder r;
    ctx.add_sqe(prep_nop, nullptr, &r);
    CHECK(r.results.empty());  // never called from inside add_sqe
    corio::test::poll_until(ctx, [&] { return !r.results.empty(); });
    CHECK(r.results == std::vector<std::int32_t>{0});
    CHECK(r.thread == std::this_thread::get_id());
    CHECK_FALSE(ctx.poll(false));
    CHECK(r.results.size() == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "the prep function fills the SQE and the CQE result reaches the handler") {
    corio::test::test_pipe p;
    p.put('a');
    p.put('b');
    struct read_op {
        int fd;
        char buf[8];
    } op{p.rd, {}};
    recorder r;
    ctx.add_sqe(
        [](io_uring_sqe* sqe, void* o) {
            auto* op = static_cast<read_op*>(o);
            io_uring_prep_read(sqe, op->fd, op->buf, sizeof op->buf, 0);
        },
        &op, &r);
    corio::test::poll_until(ctx, [&] { return !r.results.empty(); });
    CHECK(r.results[0] == 2);
    CHECK(std::string(op.buf, 2) == "ab");
}

TEST_CASE("more requests than the rings hold are all submitted and completed") {
    // 4 SQEs, 8 CQEs: the SQ ring fills every 4 requests (submitted and retried) and the CQ
    // ring overflows (the kernel keeps the extra completions; none is lost).
    corio::test::watchdog guard("ring overflow");
    context ctx{corio::context_options{corio::backend_kind::io_uring, "tiny", 4, 0}};
    constexpr int count = 1000;
    std::vector<recorder> handlers(count);
    for (auto& h : handlers) ctx.add_sqe(prep_nop, nullptr, &h);
    int done = 0;
    while (done < count) {
        ctx.poll(true);
        done = 0;
        for (auto& h : handlers) done += static_cast<int>(h.results.size());
    }
    for (auto& h : handlers) CHECK(h.results == std::vector<std::int32_t>{0});
}

TEST_CASE("requests queued from a completion handler are submitted and completed") {
    corio::test::watchdog guard("chained submissions");
    context ctx{corio::context_options{corio::backend_kind::io_uring, "chain", 8, 1}};
    struct chain : cqe_handler {
        context* ctx;
        int left;
    } c;
    c.ctx = &ctx;
    c.left = 5000;
    c.cb = [](cqe_handler* self) {
        auto* ch = static_cast<chain*>(self);
        if (--ch->left > 0) ch->ctx->add_sqe(prep_nop, nullptr, ch);
    };
    ctx.add_sqe(prep_nop, nullptr, &c);
    while (c.left > 0) ctx.poll(true);
}

TEST_CASE_FIXTURE(loop_fixture, "multishot completions reach the same handler until the last one") {
    const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(efd >= 0);
    recorder r;
    ctx.add_sqe([](io_uring_sqe* sqe,
                   void* fd) { io_uring_prep_poll_multishot(sqe, *static_cast<int*>(fd), POLLIN); },
                const_cast<int*>(&efd), &r);
    std::uint64_t one = 1;
    for (int i = 1; i <= 3; ++i) {
        REQUIRE(write(efd, &one, sizeof one) == sizeof one);
        corio::test::poll_until(ctx,
                                [&] { return r.results.size() == static_cast<std::size_t>(i); });
        std::uint64_t value;
        REQUIRE(read(efd, &value, sizeof value) == sizeof value);
        CHECK((r.flags_seen.back() & IORING_CQE_F_MORE) != 0);
    }
    ctx.cancel_sqe(&r);
    corio::test::poll_until(ctx, [&] { return !(r.flags_seen.back() & IORING_CQE_F_MORE); });
    CHECK(r.results.back() == -ECANCELED);
    CHECK(r.results.size() == 4);
    close(efd);
}

TEST_CASE_FIXTURE(loop_fixture, "a cancelled request completes with ECANCELED, exactly once") {
    corio::test::test_pipe p;
    char buf[4];
    recorder r;
    struct read_op {
        int fd;
        char* buf;
    } op{p.rd, buf};
    ctx.add_sqe(
        [](io_uring_sqe* sqe, void* o) {
            auto* op = static_cast<read_op*>(o);
            io_uring_prep_read(sqe, op->fd, op->buf, 4, 0);
        },
        &op, &r);
    ctx.poll(false);  // submitted: the read waits for data that never comes
    ctx.cancel_sqe(&r);
    ctx.cancel_sqe(&r);  // twice: harmless
    corio::test::poll_until(ctx, [&] { return !r.results.empty(); });
    CHECK(r.results == std::vector<std::int32_t>{-ECANCELED});
    p.put();
    ctx.poll(false);
    CHECK(r.results.size() == 1);
}

TEST_CASE(
    "destroying a context with requests in flight calls no handler and leaves no kernel access") {
    // The buffers are freed right after the context: under AddressSanitizer a kernel write after
    // destruction would go unnoticed, but a handler call would not; and the read must have been
    // cancelled, or the data written below would land in freed memory.
    corio::test::test_pipe p;
    auto buf = std::make_unique<char[]>(64);
    recorder r;
    {
        context ctx{corio::context_options{corio::backend_kind::io_uring, "doomed"}};
        struct read_op {
            int fd;
            char* buf;
        } op{p.rd, buf.get()};
        ctx.add_sqe(
            [](io_uring_sqe* sqe, void* o) {
                auto* op = static_cast<read_op*>(o);
                io_uring_prep_read(sqe, op->fd, op->buf, 64, 0);
            },
            &op, &r);
        for (int i = 0; i < 10; ++i) ctx.add_sqe(prep_nop, nullptr, &r);
        ctx.poll(false);
    }
    CHECK(r.results.size() <= 10);  // only NOPs reaped before destruction could have run
    for (std::int32_t res : r.results) CHECK(res == 0);
    p.put('z');
    CHECK(p.drain() == 1);  // the read is gone: the byte is still in the pipe
    CHECK(buf[0] == 0);
}

TEST_CASE("a context's destructor returns only once every request in flight is cancelled") {
    // Reads on pipes nobody writes never complete by themselves: the destructor must cancel
    // them and wait for the kernel to give them back, submitted ones and queued ones alike,
    // with fd polls in flight too. Written afterwards, the data stays in the pipes and the
    // buffers stay as they were: no read is left to land in them.
    corio::test::watchdog guard("teardown with reads in flight");
    constexpr int pipes = 8;
    std::vector<std::unique_ptr<corio::test::test_pipe>> p;
    struct read_op {
        int fd;
        char buf[16];
    };
    std::vector<read_op> ops(pipes + 1);
    std::vector<recorder> handlers(pipes + 1);
    const auto prep_read = [](io_uring_sqe* sqe, void* o) {
        auto* op = static_cast<read_op*>(o);
        io_uring_prep_read(sqe, op->fd, op->buf, sizeof op->buf, 0);
    };
    for (int i = 0; i < pipes; ++i) p.push_back(std::make_unique<corio::test::test_pipe>());
    {
        context ctx{corio::context_options{corio::backend_kind::io_uring, "doomed"}};
        int polled = 0;
        for (int i = 0; i < pipes; ++i) {
            ops[i] = {p[i]->rd, {}};
            ctx.add_sqe(prep_read, &ops[i], &handlers[i]);
            ctx.add_fd_handler(p[i]->wr, {.read = [](void* n) { ++*static_cast<int*>(n); }},
                               &polled);
        }
        ctx.poll(false);  // the reads and the polls are in the kernel now
        ops[pipes] = {p[0]->rd, {}};
        ctx.add_sqe(prep_read, &ops[pipes], &handlers[pipes]);  // queued, never submitted
        for (int i = 0; i < pipes; ++i) ctx.remove_fd_handler(p[i]->wr);
        CHECK(polled == 0);
    }
    for (int i = 0; i < pipes; ++i) p[i]->put('z');
    for (int i = 0; i < pipes; ++i) CHECK(p[i]->drain() == 1);
    for (const read_op& op : ops) CHECK(op.buf[0] == 0);
    for (const recorder& r : handlers) CHECK(r.results.empty());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a replaced fd handler's in-flight poll never reaches the new handler") {
    // Read interest replaced by write interest on the same fd: a different poll mask, so the
    // old POLL_ADD is removed while in flight; readiness for reading must not reach the writer.
    corio::test::test_pipe p;
    int reads = 0;
    ctx.add_fd_handler(p.rd, {.read = [](void* o) { ++*static_cast<int*>(o); }}, &reads);
    ctx.poll(false);  // arms the read poll
    int writes = 0;
    ctx.set_fd_handler(p.rd, {.write = [](void* o) { ++*static_cast<int*>(o); }}, &writes);
    p.put();
    for (int i = 0; i < 5; ++i) ctx.poll(false);
    CHECK(reads == 0);
    ctx.remove_fd_handler(p.rd);
    for (int i = 0; i < 3; ++i) ctx.poll(false);
    CHECK(reads == 0);
}

TEST_CASE_FIXTURE(loop_fixture, "add_sqe and notify keep working across many iterations") {
    // A cross-thread BH wakes io_uring_enter while requests are in flight.
    recorder r;
    std::atomic<int> runs{0};
    corio::bottom_half bh = ctx.make_bh([&] { runs.fetch_add(1); }, "wake");
    std::thread t([&] {
        for (int i = 0; i < 1000; ++i) {
            bh.schedule();
            while (runs.load() <= i) std::this_thread::yield();
        }
    });
    int submitted = 0;
    while (runs.load() < 1000) {
        ctx.add_sqe(prep_nop, nullptr, &r);
        ++submitted;
        ctx.poll(true);
    }
    t.join();
    corio::test::poll_until(
        ctx, [&] { return r.results.size() == static_cast<std::size_t>(submitted); });
}
