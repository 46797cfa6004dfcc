// bench=io — the cost of the coroutine layer on an I/O round trip (ops/s): the same chain of
// io_uring NOPs awaited by a coroutine and driven by a plain completion callback.
//
// One NOP is in flight at a time, so every NOP is one loop iteration (one io_uring_enter that
// submits it and waits for its completion) in both variants; the difference is what happens
// around the CQE.
//  - corio-co_await_nop: a coroutine doing `co_await corio::nop()` `ops_per_rep` times inside
//    corio::run. Per NOP: the awaiter (in the coroutine frame) is the cqe_handler, add_sqe,
//    suspend, and on the CQE co_wake, which enters the coroutine from the loop's dispatch.
//    Timed inside the coroutine, so spawning and starting it are not counted.
//  - corio-callback_nop: one cqe_handler whose callback counts the CQE and re-submits itself
//    with context::add_sqe until `ops_per_rep`, the caller driving poll(true) until done: the
//    floor the coroutine path is measured against.
// Both run on the same forced io_uring context; without io_uring the program prints one
// skipped line. The two variants alternate repetition by repetition, so drift of a shared VM
// affects both alike; each value is the median of `reps`, after one warm-up repetition each.
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <liburing.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::uint64_t ops_per_rep = 2'000'000;
constexpr int reps = 5;
constexpr std::string_view unit = "ops/s";

corio::task<double> co_await_rep() {
    std::uint64_t failed = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < ops_per_rep; ++i) {
        corio::result<int> r = co_await corio::nop();
        if (!r || *r != 0) ++failed;
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    if (failed != 0) bench::fail(fmt::format("co_await: {} NOPs completed with an error", failed));
    co_return static_cast<double>(ops_per_rep) / elapsed.count();
}

void prep_nop(io_uring_sqe* sqe, void* /*opaque*/) {
    io_uring_prep_nop(sqe);
}

// The callback chain: the handler is free again once its callback runs (the loop has copied
// the CQE into it), so the callback may queue it for the next NOP at once.
struct nop_chain : corio::cqe_handler {
    corio::context* ctx = nullptr;
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
};

void chain_done(corio::cqe_handler* h) {
    auto* chain = static_cast<nop_chain*>(h);
    if (chain->res != 0) ++chain->failed;
    if (++chain->completed < ops_per_rep) chain->ctx->add_sqe(prep_nop, nullptr, chain);
}

double callback_rep(corio::context& ctx) {
    nop_chain chain;
    chain.cb = chain_done;
    chain.ctx = &ctx;
    const double s = bench::seconds([&] {
        ctx.add_sqe(prep_nop, nullptr, &chain);
        while (chain.completed < ops_per_rep) ctx.poll(true);
    });
    if (chain.failed != 0) {
        bench::fail(fmt::format("callback: {} NOPs completed with an error", chain.failed));
    }
    return static_cast<double>(chain.completed) / s;
}

// Loop iterations and backend waits over the measured repetitions of one variant.
struct loop_work {
    std::uint64_t iterations = 0;
    std::uint64_t backend_waits = 0;

    template <class Rep>
    double count(corio::context& ctx, Rep&& rep) {
        const corio::context_stats before = ctx.stats();
        const double value = rep();
        const corio::context_stats after = ctx.stats();
        iterations += after.iterations - before.iterations;
        backend_waits += after.backend_waits - before.backend_waits;
        return value;
    }
    std::string per_op() const {
        const auto ops = static_cast<double>(reps * ops_per_rep);
        return fmt::format("iterations={:.2f} backend_waits={:.2f}",
                           static_cast<double>(iterations) / ops,
                           static_cast<double>(backend_waits) / ops);
    }
};

}  // namespace

int main() {
    std::optional<corio::context> ctx;
    try {
        ctx.emplace(corio::context_options{
            .backend = corio::backend_kind::io_uring,
            .name = "bench-io",
        });
    } catch (const corio::error& e) {
        bench::report_skipped("io", "*", fmt::format("io_uring unavailable: {}", e.what()));
        return 0;
    }
    if (!ctx->has_io_uring()) {
        bench::report_skipped("io", "*", "io_uring unavailable: context has no add_sqe");
        return 0;
    }
    bench::note("bench=io corio-backend={} ops={}x{} (one NOP in flight)",
                corio::to_string(ctx->backend()), reps, ops_per_rep);

    corio::run(*ctx, co_await_rep());  // warm-up
    callback_rep(*ctx);
    std::vector<double> co_await_values;
    std::vector<double> callback_values;
    loop_work co_await_work;
    loop_work callback_work;
    for (int i = 0; i < reps; ++i) {
        co_await_values.push_back(
            co_await_work.count(*ctx, [&] { return corio::run(*ctx, co_await_rep()); }));
        callback_values.push_back(callback_work.count(*ctx, [&] { return callback_rep(*ctx); }));
    }
    const double co_await_ops = bench::median(co_await_values);
    const double callback_ops = bench::median(callback_values);
    bench::report("io", "corio-co_await_nop", co_await_ops, unit);
    bench::report("io", "corio-callback_nop", callback_ops, unit);
    bench::note("bench=io coroutine overhead: callback/co_await - 1 = {:.1f}% (target <= 10%)",
                (callback_ops / co_await_ops - 1) * 100);
    // Both should be one iteration and one io_uring_enter per NOP, or the ratio measures that.
    bench::note("bench=io per NOP: co_await: {} callback: {}", co_await_work.per_op(),
                callback_work.per_op());
    return 0;
}
