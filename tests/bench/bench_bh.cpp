// bench=bh — bottom-half throughput (handlers/s), against the cheapest in-thread alternatives.
//
// Two patterns, each run on every system:
//  - chain: one handler that counts and re-schedules itself until `chain_runs` runs. A corio BH
//    scheduled from its own callback runs in the *next* loop iteration, so corio-chain measures
//    one full poll(true) iteration per handler (timers, fds and the notifier are checked each
//    time). The baselines only pop and run: std-chain is a deque of std::function, asio-chain
//    re-posts with asio::post and runs io_context::run().
//  - batch: `batch_size` handlers scheduled together, then drained (corio: poll(false) until all
//    ran; asio: run() + restart(); std: pop-run until empty), repeated `batch_rounds` times.
//    This amortises the per-iteration cost over many handlers.
// asio is io_context default-constructed (concurrency hint "default": locking scheduler) and,
// as asio1, with concurrency hint 1 (a single-threaded scheduler).
// Each value is the median of `reps` runs; set-up (context, BH creation) is not timed.
#include "bench.hpp"

#include <corio/context.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if CORIO_BENCH_HAVE_ASIO
#include <asio.hpp>
#endif

namespace {

constexpr std::uint64_t chain_runs = 5'000'000;
constexpr std::size_t batch_size = 1000;
constexpr std::uint64_t batch_rounds = 5'000;
constexpr std::uint64_t batch_runs = batch_size * batch_rounds;
constexpr int reps = 5;
constexpr std::string_view unit = "handlers/s";

double corio_chain() {
    corio::context ctx;
    std::uint64_t runs = 0;
    corio::bottom_half bh;  // declared after ctx: a BH must die before its context
    bh = ctx.make_bh(
        [&runs, &bh] {
            if (++runs < chain_runs) bh.schedule();
        },
        "bench-chain");
    const double s = bench::seconds([&] {
        bh.schedule();
        while (runs < chain_runs) ctx.poll(true);
    });
    return static_cast<double>(runs) / s;
}

double corio_batch() {
    corio::context ctx;
    std::uint64_t runs = 0;
    std::vector<corio::bottom_half> bhs;
    bhs.reserve(batch_size);
    for (std::size_t i = 0; i < batch_size; ++i) {
        bhs.push_back(ctx.make_bh([&runs] { ++runs; }, "bench-batch"));
    }
    const double s = bench::seconds([&] {
        for (std::uint64_t target = batch_size; target <= batch_runs; target += batch_size) {
            for (const auto& bh : bhs) bh.schedule();
            while (runs < target) ctx.poll(false);
        }
    });
    return static_cast<double>(runs) / s;
}

// The std baseline: a plain in-thread run queue, as a hand-written loop would have.
using std_queue = std::deque<std::function<void()>>;

void run_queue(std_queue& queue) {
    while (!queue.empty()) {
        // Moved out before the call: the handler may push to (and so reallocate) the queue.
        std::function<void()> handler = std::move(queue.front());
        queue.pop_front();
        handler();
    }
}

// A named type rather than a lambda so it can push a copy of itself; two pointers fit the
// small-object buffer of std::function and asio's recycling allocator, so neither allocates.
template <class Post>
struct chain_handler {
    Post* post;
    std::uint64_t* runs;
    void operator()() const {
        if (++*runs < chain_runs) (*post)(*this);
    }
};

double std_chain() {
    std_queue queue;
    std::uint64_t runs = 0;
    auto push = [&queue](auto handler) { queue.emplace_back(std::move(handler)); };
    const double s = bench::seconds([&] {
        push(chain_handler<decltype(push)>{&push, &runs});
        run_queue(queue);
    });
    return static_cast<double>(runs) / s;
}

double std_batch() {
    std_queue queue;
    std::uint64_t runs = 0;
    const double s = bench::seconds([&] {
        for (std::uint64_t round = 0; round < batch_rounds; ++round) {
            for (std::size_t i = 0; i < batch_size; ++i) queue.emplace_back([&runs] { ++runs; });
            run_queue(queue);
        }
    });
    return static_cast<double>(runs) / s;
}

#if CORIO_BENCH_HAVE_ASIO
// `hint` is passed to io_context(int); ASIO_CONCURRENCY_HINT_DEFAULT is exactly what the
// default constructor uses.
double asio_chain(int hint) {
    asio::io_context ioc(hint);
    std::uint64_t runs = 0;
    auto post = [&ioc](auto handler) { asio::post(ioc, std::move(handler)); };
    const double s = bench::seconds([&] {
        post(chain_handler<decltype(post)>{&post, &runs});
        ioc.run();
    });
    return static_cast<double>(runs) / s;
}

double asio_batch(int hint) {
    asio::io_context ioc(hint);
    std::uint64_t runs = 0;
    const double s = bench::seconds([&] {
        for (std::uint64_t round = 0; round < batch_rounds; ++round) {
            for (std::size_t i = 0; i < batch_size; ++i) asio::post(ioc, [&runs] { ++runs; });
            ioc.run();  // returns once out of work, which leaves the io_context stopped
            ioc.restart();
        }
    });
    return static_cast<double>(runs) / s;
}

void report_asio(const char* system, int hint) {
    bench::report("bh", fmt::format("{}-chain", system),
                  bench::median_of(reps, [hint] { return asio_chain(hint); }), unit);
    bench::report("bh", fmt::format("{}-batch", system),
                  bench::median_of(reps, [hint] { return asio_batch(hint); }), unit);
}
#endif

}  // namespace

int main() {
    {
        corio::context probe;
        bench::note("bench=bh corio-backend={} chain_runs={} batch={}x{} reps={}",
                    corio::to_string(probe.backend()), chain_runs, batch_rounds, batch_size, reps);
    }
    bench::report("bh", "corio-chain", bench::median_of(reps, corio_chain), unit);
    bench::report("bh", "corio-batch", bench::median_of(reps, corio_batch), unit);
    bench::report("bh", "std-chain", bench::median_of(reps, std_chain), unit);
    bench::report("bh", "std-batch", bench::median_of(reps, std_batch), unit);
#if CORIO_BENCH_HAVE_ASIO
    report_asio("asio", ASIO_CONCURRENCY_HINT_DEFAULT);
    report_asio("asio1", 1);
#else
    bench::report_skipped("bh", "asio", "libasio-dev not installed");
#endif
    return 0;
}
