// bench=timers — cost of timer operations on a context that holds many live timers (ns/op).
//
//  - arm_cancel: `live_timers` timers stay armed on the monotonic clock, each at now + 1 h +
//    a distinct offset within the following hour (shuffled, so the heap is not built in order
//    and none fires). One extra timer is then armed `far + offset` ahead (offset uniform within
//    the hour, so it lands anywhere in the queue) and cancelled; the value is ns per
//    arm+cancel pair. corio: arm_after() + cancel(). asio: steady_timer expires_after() +
//    async_wait() + cancel(); a cancelled wait still completes (operation_aborted), so its
//    handler is run by io_context::poll() every `poll_every` ops — part of asio's cost.
//  - arm_fire: the same timers re-armed at distinct past deadlines, in shuffled order; the
//    value is ns per timer of the loop that fires them all (arming is not timed). corio:
//    poll(false) until all ran; asio: io_context::run().
// Both systems use the same deadline tables (fixed seed). Each value is the median of `reps`.
#include "bench.hpp"

#include <corio/context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <random>
#include <vector>

#if CORIO_BENCH_HAVE_ASIO
#include <asio.hpp>
#endif

namespace {

using std::chrono::nanoseconds;

constexpr std::size_t live_timers = 1'000'000;
constexpr std::size_t ops_per_rep = 500'000;
constexpr std::size_t poll_every = 1000;
constexpr int reps = 5;
constexpr int fire_reps = 3;
constexpr nanoseconds far = std::chrono::hours(1);

/// The deadline tables, shared by every system so that all do the same heap work.
struct deadlines {
    std::vector<nanoseconds> live;   ///< distinct offsets in [0, 1 h), shuffled
    std::vector<nanoseconds> extra;  ///< uniform offsets in [0, 1 h), cycled through by the ops
    std::vector<nanoseconds> past;   ///< a shuffled permutation of 0 .. live_timers-1 ns

    deadlines() : live(live_timers), extra(1 << 16), past(live_timers) {
        std::mt19937_64 rng(20240601);
        const nanoseconds spacing = far / static_cast<std::int64_t>(live_timers);
        for (std::size_t i = 0; i < live_timers; ++i) {
            live[i] = spacing * static_cast<std::int64_t>(i);
            past[i] = nanoseconds(static_cast<std::int64_t>(i));
        }
        std::shuffle(live.begin(), live.end(), rng);
        std::shuffle(past.begin(), past.end(), rng);
        std::uniform_int_distribution<std::int64_t> within_hour(0, far.count() - 1);
        for (auto& d : extra) d = nanoseconds(within_hour(rng));
    }
};

double ns_per(double s, std::size_t ops) {
    return s * 1e9 / static_cast<double>(ops);
}

void run_corio(const deadlines& table) {
    corio::context ctx;
    std::size_t fired = 0;
    // Declared after ctx: timers must be destroyed before their context. A deque because
    // timers are not movable and must not be relocated.
    std::deque<corio::timer> live;
    for (std::size_t i = 0; i < live_timers; ++i) {
        live.emplace_back(ctx, corio::clock_type::monotonic, [&fired] { ++fired; });
        live.back().arm_after(far + table.live[i]);
    }
    corio::timer extra(ctx, corio::clock_type::monotonic, [&fired] { ++fired; });

    const double arm_cancel = bench::median_of(reps, [&] {
        const double s = bench::seconds([&] {
            for (std::size_t op = 0; op < ops_per_rep; ++op) {
                extra.arm_after(far + table.extra[op % table.extra.size()]);
                extra.cancel();
            }
        });
        return ns_per(s, ops_per_rep);
    });
    if (fired != 0 || extra.pending())
        bench::fail("corio: a far-future timer fired or stayed armed");
    bench::report("timers", "corio-arm_cancel", arm_cancel, "ns/op");

    const double arm_fire = bench::median_of(fire_reps, [&] {
        fired = 0;
        const std::int64_t base =
            ctx.now(corio::clock_type::monotonic) - static_cast<std::int64_t>(live_timers);
        for (std::size_t i = 0; i < live_timers; ++i) live[i].arm_at(base + table.past[i].count());
        const double s = bench::seconds([&] {
            while (fired < live_timers) ctx.poll(false);
        });
        return ns_per(s, live_timers);
    });
    bench::report("timers", "corio-arm_fire", arm_fire, "ns/op");
}

#if CORIO_BENCH_HAVE_ASIO
void run_asio(const deadlines& table) {
    asio::io_context ioc;
    std::size_t fired = 0;
    std::size_t aborted = 0;
    auto on_expiry = [&fired, &aborted](const asio::error_code& ec) {
        ++(ec == asio::error::operation_aborted ? aborted : fired);
    };
    std::deque<asio::steady_timer> live;  // destroyed before ioc
    for (std::size_t i = 0; i < live_timers; ++i) {
        live.emplace_back(ioc, far + table.live[i]);
        live.back().async_wait(on_expiry);
    }
    asio::steady_timer extra(ioc);

    const double arm_cancel = bench::median_of(reps, [&] {
        const double s = bench::seconds([&] {
            for (std::size_t op = 0; op < ops_per_rep; ++op) {
                extra.expires_after(far + table.extra[op % table.extra.size()]);
                extra.async_wait(on_expiry);
                extra.cancel();
                if ((op + 1) % poll_every == 0) ioc.poll();
            }
            ioc.poll();
        });
        return ns_per(s, ops_per_rep);
    });
    if (fired != 0 || aborted != ops_per_rep * reps)
        bench::fail("asio: unexpected handler outcome");
    bench::report("timers", "asio-arm_cancel", arm_cancel, "ns/op");

    // Cancel the far-future waits and run their aborted handlers first, so that the timed run()
    // below only fires expired timers. Running out of work stops an io_context, hence restart().
    for (auto& t : live) t.cancel();
    ioc.poll();
    ioc.restart();
    const double arm_fire = bench::median_of(fire_reps, [&] {
        fired = 0;
        const auto base =
            std::chrono::steady_clock::now() - nanoseconds(static_cast<std::int64_t>(live_timers));
        for (std::size_t i = 0; i < live_timers; ++i) {
            live[i].expires_at(base + table.past[i]);
            live[i].async_wait(on_expiry);
        }
        const double s = bench::seconds([&] { ioc.run(); });
        ioc.restart();
        if (fired != live_timers) bench::fail("asio: not every expired timer fired");
        return ns_per(s, live_timers);
    });
    bench::report("timers", "asio-arm_fire", arm_fire, "ns/op");
}
#endif

}  // namespace

int main() {
    const deadlines table;
    {
        corio::context probe;
        bench::note("bench=timers corio-backend={} live_timers={} ops={}x{} fire_reps={}",
                    corio::to_string(probe.backend()), live_timers, reps, ops_per_rep, fire_reps);
    }
    run_corio(table);
#if CORIO_BENCH_HAVE_ASIO
    run_asio(table);
#else
    bench::report_skipped("timers", "asio", "libasio-dev not installed");
#endif
    return 0;
}
