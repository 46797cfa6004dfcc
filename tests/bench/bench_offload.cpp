// bench=offload — thread-pool round trips (ops/s): submit from the loop's thread, run a
// trivial function on a worker, deliver the completion back on the loop's thread.
//
//  - corio-offload_<k>: k coroutines on one context, each doing `co_await corio::offload(fn)`
//    in a loop (the completion wakes the coroutine in a BH pass of its context).
//  - corio-submit_<k>: k callback chains through `ctx.pool().submit(fn, done)`, each `done`
//    submitting the chain's next job: the floor under offload.
//  - std-async_1: `std::async(std::launch::async, fn).get()` in a loop (a thread per call).
//  - asio-thread_pool_<k>: k chains, each posting fn to a default-constructed asio::thread_pool
//    whose handler posts the completion back to an io_context run() by the main thread.
// k is 1 (one job in flight: the latency of the round trip) and `in_flight` (throughput).
// corio's context and pool are the defaults an application gets (polling max_ns = 32768;
// workers started on demand, up to 64) and live across the reps, as Asio's pool does (one
// context for k = 1, another for k = `in_flight`). corio-offload_<in_flight>_capped caps the
// pool at Asio's default size (2 x hardware concurrency), Asio's pool never growing beyond it.
// fn returns the CPU it ran on, so the '#' line of each variant says how many jobs ran on the
// CPU their submitter was on when the completion arrived (where the scheduler keeps the two
// on one CPU, a round trip is a context switch rather than a cross-CPU wake-up), plus, for
// corio, the most workers alive after a rep. Every rep lasts `window`; the variants alternate
// rep by rep so that drift of a shared VM affects all alike; each value is the median of
// `reps` after one warm-up rep each. Arguments, if any, name the variants to run (profiling).
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/offload.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/thread_pool.hpp>

#include <sched.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#if CORIO_BENCH_HAVE_ASIO
#include <asio.hpp>
#endif

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::chrono::milliseconds window{250};
constexpr int reps = 5;
constexpr int in_flight = 64;
constexpr std::string_view unit = "ops/s";

/// The offloaded work: next to nothing, with a result to check (never negative).
int worker_cpu() noexcept {
    return sched_getcpu();
}

/// Jobs completed by every chain of one rep, and when the rep ends. Submitting thread only.
struct tally {
    clock_type::time_point deadline = clock_type::now() + window;
    std::uint64_t ops = 0;
    std::uint64_t wrong = 0;     // completions without the function's value
    std::uint64_t same_cpu = 0;  // the job ran on the CPU its completion runs on

    /// A completion, with the job's value (-1 for none).
    void record(int cpu) {
        ++ops;
        if (cpu < 0) {
            ++wrong;
        } else if (cpu == sched_getcpu()) {
            ++same_cpu;
        }
    }
    bool more() const { return clock_type::now() < deadline; }
};

// ---- corio --------------------------------------------------------------------------------

corio::task<void> offload_chain(tally& t) {
    do {
        corio::result<int> r = co_await corio::offload(worker_cpu);
        t.record(r ? *r : -1);
    } while (t.more());
}

corio::task<void> offload_all(int chains, tally& t) {
    corio::context& ctx = *corio::context::current();
    std::vector<corio::join_handle<void>> handles;
    for (int i = 0; i < chains; ++i) handles.push_back(corio::spawn(ctx, offload_chain(t)));
    for (auto& h : handles) co_await h;
}

double corio_offload_rep(corio::context& ctx, int chains, tally& t) {
    return bench::seconds([&] { corio::run(ctx, offload_all(chains, t)); });
}

struct submit_chain {
    corio::context* ctx;
    tally* t;
    int* active;

    void next() const {
        ctx->pool().submit(worker_cpu, [chain = *this](corio::result<int> r) {
            chain.t->record(r ? *r : -1);
            if (chain.t->more()) {
                chain.next();
            } else {
                --*chain.active;
            }
        });
    }
};

double corio_submit_rep(corio::context& ctx, int chains, tally& t) {
    int active = chains;
    return bench::seconds([&] {
        for (int i = 0; i < chains; ++i) submit_chain{&ctx, &t, &active}.next();
        ctx.run_until([&active] { return active == 0; });
    });
}

// ---- baselines ----------------------------------------------------------------------------

double std_async_rep(tally& t) {
    return bench::seconds([&] {
        do {
            t.record(std::async(std::launch::async, worker_cpu).get());
        } while (t.more());
    });
}

#if CORIO_BENCH_HAVE_ASIO
using asio_guard = asio::executor_work_guard<asio::io_context::executor_type>;

struct asio_chain {
    asio::thread_pool* pool;
    asio::io_context* ioc;
    tally* t;
    int* active;
    asio_guard* guard;

    void next() const {
        asio::post(*pool, [chain = *this] {
            const int cpu = worker_cpu();
            asio::post(*chain.ioc, [chain, cpu] {
                chain.t->record(cpu);
                if (chain.t->more()) {
                    chain.next();
                } else if (--*chain.active == 0) {
                    chain.guard->reset();  // run() returns
                }
            });
        });
    }
};

double asio_rep(asio::thread_pool& pool, asio::io_context& ioc, int chains, tally& t) {
    int active = chains;
    const double s = bench::seconds([&] {
        // While every job is on the pool the io_context has nothing queued: the guard keeps
        // run() going until the last chain has ended.
        asio_guard guard = asio::make_work_guard(ioc);
        for (int i = 0; i < chains; ++i) asio_chain{&pool, &ioc, &t, &active, &guard}.next();
        ioc.run();
    });
    ioc.restart();
    return s;
}
#endif

struct variant {
    std::string name;
    /// One rep: fills the tally, returns the seconds it took.
    std::function<double(tally&)> rep;
    corio::context* corio_ctx = nullptr;  // corio's variants: whose pool to look at
    std::vector<double> values = {};
    std::uint64_t ops = 0;  // over the measured reps
    std::uint64_t same_cpu = 0;
    int max_workers = 0;

    void measure(bool record) {
        tally t;
        const double s = rep(t);
        if (t.wrong != 0) {
            bench::fail(fmt::format("{}: {} jobs without their result", name, t.wrong));
        }
        if (!record) return;
        values.push_back(static_cast<double>(t.ops) / s);
        ops += t.ops;
        same_cpu += t.same_cpu;
        if (corio_ctx) max_workers = std::max(max_workers, corio_ctx->pool().stats().threads);
    }
};

}  // namespace

int main(int argc, char** argv) {
    // One context (and pool) per number in flight, so that the worker counts of the '#' lines
    // are those the variant needed (idle workers retire only after 10 s).
    corio::context ctx_one({.name = "offload-1"});
    corio::context ctx_many({.name = fmt::format("offload-{}", in_flight)});
    corio::context ctx_capped({.name = "offload-capped"});
    const int capped_workers =
        static_cast<int>(std::max(2U, 2 * std::thread::hardware_concurrency()));
    bench::note("bench=offload corio-backend={} window={}ms reps={} in_flight=1,{}",
                corio::to_string(ctx_one.backend()), window.count(), reps, in_flight);
    std::vector<variant> variants;
    for (int k : {1, in_flight}) {
        corio::context* ctx = k == 1 ? &ctx_one : &ctx_many;
        variants.push_back({fmt::format("corio-offload_{}", k),
                            [ctx, k](tally& t) { return corio_offload_rep(*ctx, k, t); }, ctx});
        variants.push_back({fmt::format("corio-submit_{}", k),
                            [ctx, k](tally& t) { return corio_submit_rep(*ctx, k, t); }, ctx});
    }
    // The same with the pool capped at the size of Asio's default pool, to tell the cost of a
    // round trip from the cost of the workers' count.
    ctx_capped.pool().set_limits(0, capped_workers);
    variants.push_back(
        {fmt::format("corio-offload_{}_capped", in_flight),
         [&ctx_capped](tally& t) { return corio_offload_rep(ctx_capped, in_flight, t); },
         &ctx_capped});
    variants.push_back({"std-async_1", std_async_rep});
#if CORIO_BENCH_HAVE_ASIO
    asio::thread_pool pool;
    asio::io_context ioc;
    for (int k : {1, in_flight}) {
        variants.push_back({fmt::format("asio-thread_pool_{}", k),
                            [&pool, &ioc, k](tally& t) { return asio_rep(pool, ioc, k, t); }});
    }
#endif

    if (argc > 1) {
        const std::vector<std::string_view> wanted(argv + 1, argv + argc);
        std::erase_if(variants, [&wanted](const variant& v) {
            return std::find(wanted.begin(), wanted.end(), v.name) == wanted.end();
        });
    }
    for (variant& v : variants) v.measure(false);  // warm-up: workers, caches, page faults
    for (int i = 0; i < reps; ++i) {
        for (variant& v : variants) v.measure(true);
    }
    for (variant& v : variants) {
        bench::report("offload", v.name, bench::median(v.values), unit);
    }
#if !CORIO_BENCH_HAVE_ASIO
    bench::report_skipped("offload", "asio", "libasio-dev not installed");
#endif
    for (const variant& v : variants) {
        const std::string workers =
            v.corio_ctx ? fmt::format(", up to {} workers", v.max_workers) : std::string();
        bench::note("{}: same_cpu={:.0f}%{}", v.name,
                    100.0 * static_cast<double>(v.same_cpu) / static_cast<double>(v.ops), workers);
    }
#if CORIO_BENCH_HAVE_ASIO
    bench::note("asio thread_pool: default size, {} threads (2 x hardware concurrency)",
                capped_workers);
#endif
    return 0;
}
