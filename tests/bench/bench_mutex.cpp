// bench=mutex — corio::co_mutex against std::mutex: ns per lock + unlock pair.
//
//  - <system>-uncontended: one coroutine (corio) or one thread (std) locks and unlocks
//    `uncontended_ops` times; nobody else touches the mutex.
//  - <system>-contended_<T>t: T threads hammer one mutex; the critical section increments a
//    plain counter. corio: each thread runs its own context with one coroutine, so a waiter
//    mostly spins briefly (the holder is on another thread) and otherwise sleeps in its loop
//    until the unlocker hands the mutex over through co_schedule. std: futex sleeps.
//  - corio-contended_<T>tx<C>: the same with C coroutines per context: a holder on the same
//    thread makes lockers queue at once, so most hand-offs go to a coroutine of the same
//    context (a deferred wake, no syscall) and some cross threads.
// Both uncontended variants are two atomic read-modify-writes at heart; std::mutex is measured
// after a thread was created (single-threaded, glibc skips its atomics).
// value = total elapsed / total pairs; the median of `reps` repetitions. Each repetition checks
// the counter (a lost exclusion is a failure, not a number).
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/spawn.hpp>
#include <corio/sync.hpp>
#include <corio/task.hpp>
#include <corio/when_all.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::int64_t uncontended_ops = 5'000'000;
constexpr std::int64_t contended_ops = 400'000;  // in total, split over the lockers
constexpr int reps = 5;

corio::task<void> co_hammer(corio::co_mutex& m, std::int64_t& counter, std::int64_t ops) {
    for (std::int64_t i = 0; i < ops; ++i) {
        co_await m.lock();
        ++counter;
        m.unlock();
    }
}

corio::task<void> co_hammers(corio::co_mutex& m, std::int64_t& counter, std::int64_t ops,
                             int coroutines) {
    std::vector<corio::join_handle<void>> all;
    for (int i = 0; i < coroutines; ++i) {
        all.push_back(corio::spawn(*corio::context::current(), co_hammer(m, counter, ops)));
    }
    for (auto& h : all) co_await h;
}

// Runs body(thread_index) on `threads` threads released together; returns ns per pair.
template <class Body>
double timed_threads(int threads, std::int64_t pairs, const Body& body) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] { body(t, ready, go); });
    }
    while (ready.load() < threads) std::this_thread::yield();
    const double s = bench::seconds([&] {
        go.store(true);
        for (auto& th : pool) th.join();
    });
    return s * 1e9 / static_cast<double>(pairs);
}

void wait_for_go(std::atomic<int>& ready, std::atomic<bool>& go) {
    ready.fetch_add(1);
    while (!go.load()) std::this_thread::yield();
}

double corio_contended(int threads, int coroutines) {
    corio::co_mutex m;
    std::int64_t counter = 0;
    const std::int64_t per = contended_ops / (threads * coroutines);
    const double ns = timed_threads(threads, per * threads * coroutines,
                                    [&](int, std::atomic<int>& ready, std::atomic<bool>& go) {
                                        corio::context ctx;
                                        wait_for_go(ready, go);
                                        corio::run(ctx, co_hammers(m, counter, per, coroutines));
                                    });
    if (counter != per * threads * coroutines) bench::fail("co_mutex lost an increment");
    return ns;
}

double std_contended(int threads) {
    std::mutex m;
    std::int64_t counter = 0;
    const std::int64_t per = contended_ops / threads;
    const double ns = timed_threads(threads, per * threads,
                                    [&](int, std::atomic<int>& ready, std::atomic<bool>& go) {
                                        wait_for_go(ready, go);
                                        for (std::int64_t i = 0; i < per; ++i) {
                                            std::lock_guard g(m);
                                            ++counter;
                                        }
                                    });
    if (counter != per * threads) bench::fail("std::mutex lost an increment");
    return ns;
}

}  // namespace

int main() {
    const int threads = 2;
    // glibc skips the atomics of a private lock while the process has a single thread; once
    // a thread was created, it never does again. Measure std::mutex as multi-threaded code
    // sees it.
    std::thread([] {}).join();
    corio::context ctx;
    bench::note("corio backend={}", corio::to_string(ctx.backend()));

    bench::report("mutex", "corio-uncontended",
                  bench::median_of(reps,
                                   [&] {
                                       corio::co_mutex m;
                                       std::int64_t counter = 0;
                                       const double s = bench::seconds([&] {
                                           corio::run(ctx, co_hammer(m, counter, uncontended_ops));
                                       });
                                       if (counter != uncontended_ops)
                                           bench::fail("co_mutex lost an increment");
                                       return s * 1e9 / uncontended_ops;
                                   }),
                  "ns");
    bench::report("mutex", "std-uncontended",
                  bench::median_of(reps,
                                   [&] {
                                       std::mutex m;
                                       std::int64_t counter = 0;
                                       const double s = bench::seconds([&] {
                                           for (std::int64_t i = 0; i < uncontended_ops; ++i) {
                                               std::lock_guard g(m);
                                               ++counter;
                                           }
                                       });
                                       if (counter != uncontended_ops)
                                           bench::fail("std::mutex lost an increment");
                                       return s * 1e9 / uncontended_ops;
                                   }),
                  "ns");

    const std::string t = std::to_string(threads) + "t";
    bench::report("mutex", "corio-contended_" + t,
                  bench::median_of(reps, [&] { return corio_contended(threads, 1); }), "ns");
    bench::report("mutex", "corio-contended_" + t + "x4",
                  bench::median_of(reps, [&] { return corio_contended(threads, 4); }), "ns");
    bench::report("mutex", "std-contended_" + t,
                  bench::median_of(reps, [&] { return std_contended(threads); }), "ns");
}
