// bench=coro — the coroutine layer alone (ns per operation), against bare C++20 coroutines and
// Boost.Context fibers.
//
// Every corio variant runs inside one corio::run(ctx, driver()) call: the loop starts the driver
// and, once, the ponger of corio-resume; no measured operation goes through it.
//  - corio-task_lifecycle: `co_await trivial(i)` in the driver: the frame comes from corio's
//    per-thread frame pool, the driver transfers into the task symmetrically, the task
//    co_returns, its final awaiter transfers back, and await_resume takes the value and frees
//    the frame.
//  - corio-resume: one wake + switch, measured by two coroutines (the driver and a spawned
//    ponger) that take turns: each co_wakes the other, then suspends with corio::suspend. A
//    co_wake from inside a running coroutine only queues the woken one on it; once the waker
//    has suspended (its resume() returns into corio's entry routine, detail::enter, which then
//    runs the suspend action that parks its handle), enter() resumes the woken coroutine. So
//    one unit is: co_wake (queue) + suspend + park + entry of the other coroutine, all in the
//    one enter() loop that started the ponger. value = elapsed / (2 x round trips).
//  - std-frame_new / std-frame_pooled: a minimal coroutine type (lazy, int result) created,
//    run to completion with resume() and destroyed, with the frame from the global operator
//    new, or from a trivial per-thread free list in the promise.
//  - corio-fiber_create: `co_await spawn_fiber(ctx, empty)` in the driver: join state and
//    one-shot BH, the fiber's driver task frame, a stack from the per-thread pool, the switch
//    into the fiber and back when it returns, and the joiner's wake-up.
//  - corio-fiber_await: `corio::await(trivial(i))` on a fiber: the fiber switches to its
//    driver, which co_awaits the task (as corio-task_lifecycle does) and switches back.
//  - corio-fiber_yield: a fiber's yield + wake round trip: it awaits corio::suspend with an
//    action that co_wakes it; its driver suspends, enter() runs the action, which queues the
//    fiber on the same enter() loop, which resumes the driver, which switches back. Two stack
//    switches, like boost-fiber_switch.
//  - boost-fiber_create: a boost::context::fiber (default fixedsize_stack) created and run to
//    completion. boost-fiber_switch: a resume into a fiber plus its resume back (the yield),
//    i.e. two stack switches; a '#' line gives the per-switch figure next to corio-resume.
// The coroutine functions are noinline so that no compiler elides a frame allocation (HALO)
// in one variant and not another. The three lifecycle variants alternate repetition by
// repetition; each value is the median of `reps`, after one warm-up repetition.
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/fiber.hpp>
#include <corio/schedule.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/version.hpp>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr std::uint64_t lifecycle_ops = 10'000'000;
constexpr std::uint64_t resume_round_trips = 5'000'000;
constexpr std::uint64_t fiber_creates = 1'000'000;
constexpr std::uint64_t fiber_round_trips = 10'000'000;
constexpr std::uint64_t fiber_awaits = 10'000'000;
constexpr int reps = 5;
constexpr std::string_view unit = "ns";

// Sum of (i + 1) over i < n: what every lifecycle loop must add up to.
constexpr std::uint64_t expected_sum(std::uint64_t n) {
    return n * (n + 1) / 2;
}

// Nanoseconds per operation since `start`, for loops that co_await (bench::seconds takes a
// plain callable).
double ns_per_op(std::chrono::steady_clock::time_point start, std::uint64_t ops) {
    const std::chrono::duration<double, std::nano> elapsed =
        std::chrono::steady_clock::now() - start;
    return elapsed.count() / static_cast<double>(ops);
}

// ---- bare C++20 coroutines: the floor for a frame's life --------------------------------------

// Frames from the global operator new/delete.
struct global_new {};

// One coroutine function uses this, so every frame has the same size and a freed block is
// reused as it is. The head is a plain (trivially destructible) thread_local, as cheap to reach
// as TLS gets; drain() returns the cached blocks once the measurement is over.
struct free_list_new {
    struct block {
        block* next;
    };
    static inline thread_local block* head = nullptr;

    static void* operator new(std::size_t size) {
        if (block* b = head) {
            head = b->next;
            return b;
        }
        return ::operator new(size);
    }
    static void operator delete(void* frame, std::size_t /*size*/) noexcept {
        auto* b = static_cast<block*>(frame);
        b->next = head;
        head = b;
    }
    static void drain() noexcept {
        while (block* b = head) {
            head = b->next;
            ::operator delete(b);
        }
    }
};

template <class Allocation>
struct bare_task {
    struct promise_type : Allocation {
        int value = 0;

        bare_task get_return_object() noexcept {
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() const noexcept { return {}; }
        std::suspend_always final_suspend() const noexcept { return {}; }
        void return_value(int v) noexcept { value = v; }
        void unhandled_exception() const noexcept { std::terminate(); }
    };
    std::coroutine_handle<promise_type> handle;
};

template <class Allocation>
[[gnu::noinline]] bare_task<Allocation> bare_trivial(int x) {
    co_return x + 1;
}

template <class Allocation>
double bare_lifecycle_rep() {
    std::uint64_t sum = 0;
    const double s = bench::seconds([&sum] {
        for (std::uint64_t i = 0; i < lifecycle_ops; ++i) {
            auto h = bare_trivial<Allocation>(static_cast<int>(i)).handle;
            h.resume();
            sum += static_cast<std::uint64_t>(h.promise().value);
            h.destroy();
        }
    });
    if (sum != expected_sum(lifecycle_ops))
        bench::fail("std: the bare coroutines returned a wrong sum");
    return s * 1e9 / static_cast<double>(lifecycle_ops);
}

// ---- corio ------------------------------------------------------------------------------------

[[gnu::noinline]] corio::task<int> trivial(int x) {
    co_return x + 1;
}

corio::task<double> task_lifecycle_rep() {
    std::uint64_t sum = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < lifecycle_ops; ++i) {
        sum += static_cast<std::uint64_t>(co_await trivial(static_cast<int>(i)));
    }
    const double ns = ns_per_op(start, lifecycle_ops);
    if (sum != expected_sum(lifecycle_ops))
        bench::fail("corio: the trivial tasks returned a wrong sum");
    co_return ns;
}

// The two sides of corio-resume; each handle is refreshed by the suspend action of its owner.
struct ping_pong {
    corio::coroutine driver;
    corio::coroutine ponger;
    bool stop = false;
    std::uint64_t pongs = 0;
};

corio::task<void> ponger(ping_pong& pp) {
    while (!pp.stop) {
        ++pp.pongs;
        corio::co_wake(pp.driver);  // queued: the driver is entered once this one suspends
        co_await corio::suspend([&pp](corio::coroutine c) { pp.ponger = c; });
    }
}

corio::task<double> resume_rep(ping_pong& pp) {
    const std::uint64_t pongs_before = pp.pongs;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < resume_round_trips; ++i) {
        corio::co_wake(pp.ponger);
        co_await corio::suspend([&pp](corio::coroutine c) { pp.driver = c; });
    }
    const double ns = ns_per_op(start, 2 * resume_round_trips);
    if (pp.pongs - pongs_before != resume_round_trips) {
        bench::fail(fmt::format("corio: {} wake-ups of the ponger in {} round trips",
                                pp.pongs - pongs_before, resume_round_trips));
    }
    co_return ns;
}

// ---- corio fibers ------------------------------------------------------------------------------

corio::task<double> corio_fiber_create_rep(corio::context& ctx) {
    std::uint64_t ran = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < fiber_creates; ++i) {
        co_await corio::spawn_fiber(
            ctx, [&ran] { ++ran; }, "bench-fiber");
    }
    const double ns = ns_per_op(start, fiber_creates);
    if (ran != fiber_creates) bench::fail("corio: a fiber did not run");
    co_return ns;
}

corio::task<double> corio_fiber_await_rep() {
    return corio::run_on_fiber([] {
        std::uint64_t sum = 0;
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < fiber_awaits; ++i) {
            sum += static_cast<std::uint64_t>(corio::await(trivial(static_cast<int>(i))));
        }
        const double ns = ns_per_op(start, fiber_awaits);
        if (sum != expected_sum(fiber_awaits))
            bench::fail("corio: the tasks awaited on a fiber returned a wrong sum");
        return ns;
    });
}

corio::task<double> corio_fiber_yield_rep() {
    return corio::run_on_fiber([] {
        std::uint64_t wakes = 0;
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < fiber_round_trips; ++i) {
            corio::await(corio::suspend([&wakes](corio::coroutine self) {
                ++wakes;
                corio::co_wake(self);
            }));
        }
        const double ns = ns_per_op(start, fiber_round_trips);
        if (wakes != fiber_round_trips) bench::fail("corio: wrong number of fiber wake-ups");
        return ns;
    });
}

struct coro_results {
    double task_lifecycle;
    double resume;
    double frame_new;
    double frame_pooled;
    double fiber_create;
    double fiber_await;
    double fiber_yield;
};

corio::task<coro_results> driver(corio::context& ctx) {
    coro_results results{};
    {
        co_await task_lifecycle_rep();  // warm-up, also of the frame pools
        bare_lifecycle_rep<global_new>();
        bare_lifecycle_rep<free_list_new>();
        std::vector<double> corio_values;
        std::vector<double> new_values;
        std::vector<double> pooled_values;
        for (int i = 0; i < reps; ++i) {
            corio_values.push_back(co_await task_lifecycle_rep());
            new_values.push_back(bare_lifecycle_rep<global_new>());
            pooled_values.push_back(bare_lifecycle_rep<free_list_new>());
        }
        free_list_new::drain();
        results.task_lifecycle = bench::median(corio_values);
        results.frame_new = bench::median(new_values);
        results.frame_pooled = bench::median(pooled_values);
    }

    ping_pong pp;
    corio::join_handle<void> pong = corio::spawn(ctx, ponger(pp), "bench-ponger");
    // The loop starts the ponger (a BH), which wakes the driver: from here on the two take
    // turns inside the enter() loop of that BH.
    co_await corio::suspend([&pp](corio::coroutine c) { pp.driver = c; });
    co_await resume_rep(pp);  // warm-up
    std::vector<double> resume_values;
    for (int i = 0; i < reps; ++i) resume_values.push_back(co_await resume_rep(pp));
    results.resume = bench::median(resume_values);
    pp.stop = true;
    corio::co_wake(pp.ponger);
    co_await pong;

    // Each first repetition is a warm-up (the stack pool, the frame pool).
    std::vector<double> create_values;
    std::vector<double> await_values;
    std::vector<double> yield_values;
    for (int i = 0; i <= reps; ++i) {
        const double create = co_await corio_fiber_create_rep(ctx);
        const double awaited = co_await corio_fiber_await_rep();
        const double yielded = co_await corio_fiber_yield_rep();
        if (i == 0) continue;
        create_values.push_back(create);
        await_values.push_back(awaited);
        yield_values.push_back(yielded);
    }
    results.fiber_create = bench::median(create_values);
    results.fiber_await = bench::median(await_values);
    results.fiber_yield = bench::median(yield_values);
    co_return results;
}

// ---- Boost.Context ----------------------------------------------------------------------------

namespace bctx = boost::context;

double fiber_create_rep() {
    std::uint64_t ran = 0;
    const double s = bench::seconds([&ran] {
        for (std::uint64_t i = 0; i < fiber_creates; ++i) {
            bctx::fiber f{[&ran](bctx::fiber&& caller) {
                ++ran;
                return std::move(caller);
            }};
            f = std::move(f).resume();  // runs it to completion: `f` comes back empty
        }
    });
    if (ran != fiber_creates) bench::fail("boost: a fiber did not run");
    return s * 1e9 / static_cast<double>(fiber_creates);
}

double fiber_switch_rep() {
    bool stop = false;
    std::uint64_t yields = 0;
    bctx::fiber f{[&stop, &yields](bctx::fiber&& caller) {
        while (!stop) {
            ++yields;
            caller = std::move(caller).resume();
        }
        return std::move(caller);
    }};
    f = std::move(f).resume();  // to its first yield
    const double s = bench::seconds([&f] {
        for (std::uint64_t i = 0; i < fiber_round_trips; ++i) f = std::move(f).resume();
    });
    stop = true;
    f = std::move(f).resume();
    if (yields != fiber_round_trips + 1) bench::fail("boost: wrong number of fiber switches");
    return s * 1e9 / static_cast<double>(fiber_round_trips);
}

}  // namespace

int main() {
    corio::context ctx;
    bench::note(
        "bench=coro corio-backend={} boost={} lifecycle_ops={} resume_round_trips={} "
        "fiber_creates={} fiber_round_trips={} fiber_awaits={} reps={}",
        corio::to_string(ctx.backend()), BOOST_LIB_VERSION, lifecycle_ops, resume_round_trips,
        fiber_creates, fiber_round_trips, fiber_awaits, reps);
    const coro_results r = corio::run(ctx, driver(ctx));
    bench::report("coro", "corio-task_lifecycle", r.task_lifecycle, unit);
    bench::report("coro", "corio-resume", r.resume, unit);
    bench::report("coro", "std-frame_new", r.frame_new, unit);
    bench::report("coro", "std-frame_pooled", r.frame_pooled, unit);
    bench::report("coro", "corio-fiber_create", r.fiber_create, unit);
    bench::report("coro", "corio-fiber_await", r.fiber_await, unit);
    bench::report("coro", "corio-fiber_yield", r.fiber_yield, unit);

    fiber_create_rep();  // warm-up (the allocator's stack cache)
    const double fiber_create = bench::median_of(reps, fiber_create_rep);
    bench::report("coro", "boost-fiber_create", fiber_create, unit);
    fiber_switch_rep();
    const double fiber_switch = bench::median_of(reps, fiber_switch_rep);
    bench::report("coro", "boost-fiber_switch", fiber_switch, unit);

    bench::note("bench=coro corio-task_lifecycle/std-frame_new={:.2f} (target <= 1.0)",
                r.task_lifecycle / r.frame_new);
    bench::note("bench=coro per switch: corio-resume={:.3g} ns, boost-fiber_switch/2={:.3g} ns",
                r.resume, fiber_switch / 2);
    bench::note(
        "bench=coro fiber overheads: corio-fiber_await - corio-task_lifecycle={:.3g} ns, "
        "corio-fiber_yield - boost-fiber_switch={:.3g} ns",
        r.fiber_await - r.task_lifecycle, r.fiber_yield - fiber_switch);
    return 0;
}
