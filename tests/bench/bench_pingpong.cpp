// bench=pingpong — a coroutine bouncing between two threads: round trips per second, against
// the same hand-over done by raw threads and by Asio.
//
// A round trip is two hand-overs, side A -> side B -> side A; nothing else happens on either
// side, so the value is the cost of waking the other thread and switching to the work.
//  - corio-nopoll / corio-poll: two io_threads; one coroutine doing `co_await
//    reschedule_self{b}; co_await reschedule_self{a};` in a loop (timed inside the coroutine).
//    nopoll: poll_params max_ns = 0, so every hand-over wakes a loop blocked in the kernel;
//    poll: QEMU's IOThread default (max_ns = 32768, adaptive), so a loop that just handed the
//    coroutine away busy-polls its notifier and can see it come back without sleeping.
//  - epoll-eventfd: two threads, each blocked in epoll_wait on its own eventfd, writing the
//    other's: the syscall floor of a wake-up without polling.
//  - spin-atomic: two threads spinning on one cache line, each pinned to a CPU of its own:
//    the physical limit.
//  - asio-post: two io_contexts, each run() by its own thread; a handler on one posts the next
//    to the other (default io_context: its reactor blocks in epoll_wait, woken by an eventfd).
// The others run twice: placed by the scheduler (no suffix) and `_pinned`, side A on one CPU
// and side B on another. Where the scheduler packs threads that wake each other onto one CPU
// (a VM kernel may do so on purpose), an unpinned hand-over is a context switch on that CPU,
// not a cross-CPU wake-up, and a busy-polling side only delays the side it waits for; the '#'
// line of each variant gives the share of sampled round trips whose two sides sat on one CPU.
// Every rep lasts `window` after `warmup_rounds` untimed round trips and builds its threads
// afresh; the variants alternate rep by rep so that drift of a shared VM affects all alike, and
// each value is the median of `reps`. The main thread of the corio variants only waits (its
// own context does not poll). Arguments, if any, name the variants to run (for profiling).
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/error.hpp>
#include <corio/io_thread.hpp>
#include <corio/schedule.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
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
constexpr std::uint64_t warmup_rounds = 512;
constexpr int reps = 5;
/// Round trips between two looks at the clock (a clock read is ~2% of a spinning round trip).
constexpr std::uint64_t batch = 16;
constexpr std::string_view unit = "roundtrips/s";
/// Spun-on words get a cache-line pair of their own (the adjacent-line prefetcher), except
/// where the spin baseline shares one on purpose.
constexpr std::size_t spin_alignment = 128;

[[noreturn]] void fail_errno(std::string_view what) {
    bench::fail(fmt::format("{}: {}", what, std::strerror(errno)));
}

/// Where the two sides run: CPUs to pin them to, or -1 for wherever the scheduler likes.
struct placement {
    int cpu_a = -1;
    int cpu_b = -1;
};

/// Pins the calling thread to `cpu` (nothing for -1).
void pin_to(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (const int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set); e != 0) {
        bench::fail(fmt::format("pinning a thread to CPU {}: {}", cpu, std::strerror(e)));
    }
}

/// Counts round trips after the warm-up, and turns them into a rate once `window` is over.
class round_counter {
public:
    /// After one more batch of round trips: false once the window is over.
    bool next_batch() {
        rounds_ += batch;
        if (rounds_ == warmup_rounds) start_ = clock_type::now();
        if (rounds_ <= warmup_rounds) return true;
        end_ = clock_type::now();
        return end_ - start_ < window;
    }
    double rate() const {
        const std::chrono::duration<double> s = end_ - start_;
        return static_cast<double>(rounds_ - warmup_rounds) / s.count();
    }
    std::uint64_t rounds() const { return rounds_; }

private:
    static_assert(warmup_rounds % batch == 0);
    std::uint64_t rounds_ = 0;
    clock_type::time_point start_;
    clock_type::time_point end_;
};

/// How often both sides sat on one CPU: side B notes its CPU when it answers (once per batch
/// where that is cheap to arrange, else every time), side A compares once per batch.
class cpu_sharing {
public:
    void b_answers() noexcept { b_cpu_.store(sched_getcpu(), std::memory_order_relaxed); }
    void a_samples() noexcept {
        ++sampled_;
        if (b_cpu_.load(std::memory_order_relaxed) == sched_getcpu()) ++same_;
    }
    /// "same_cpu=N%" over every sample so far (reps included).
    std::string summary() const {
        return fmt::format("same_cpu={:.0f}%",
                           100.0 * static_cast<double>(same_) / static_cast<double>(sampled_));
    }
    void reset() noexcept { sampled_ = same_ = 0; }

private:
    // Written by side B, read by side A: a hint only (relaxed), never synchronises anything.
    std::atomic<int> b_cpu_{-1};
    std::uint64_t sampled_ = 0;  // side A only
    std::uint64_t same_ = 0;
};

// ---- corio --------------------------------------------------------------------------------

/// What the loops of both io_threads did, summed over the reps of one variant.
struct loop_activity {
    std::uint64_t rounds = 0;
    std::uint64_t blocking_waits = 0;
    std::uint64_t wakeups = 0;
    std::uint64_t poll_hits = 0;

    void add(const corio::context_stats& s) {
        blocking_waits += s.blocking_waits;
        wakeups += s.wakeups;
        poll_hits += s.poll_hits;
    }
    std::string summary() const {
        const auto n = static_cast<double>(rounds);
        return fmt::format(
            "; per round trip (both loops): blocking_waits={:.2f} wakeups={:.2f} poll_hits={:.2f}",
            static_cast<double>(blocking_waits) / n, static_cast<double>(wakeups) / n,
            static_cast<double>(poll_hits) / n);
    }
};

corio::task<void> bounce(corio::context& a, corio::context& b, placement where,
                         round_counter& counter, cpu_sharing& sharing) {
    co_await corio::reschedule_self{a};
    pin_to(where.cpu_a);  // pins the io_thread, which lives for this rep only
    co_await corio::reschedule_self{b};
    pin_to(where.cpu_b);
    co_await corio::reschedule_self{a};
    do {
        co_await corio::reschedule_self{b};
        sharing.b_answers();
        co_await corio::reschedule_self{a};
        sharing.a_samples();
        for (std::uint64_t i = 1; i < batch; ++i) {
            co_await corio::reschedule_self{b};
            co_await corio::reschedule_self{a};
        }
    } while (counter.next_batch());
}

double corio_rep(std::int64_t poll_max_ns, placement where, cpu_sharing& sharing,
                 loop_activity& activity) {
    const corio::context_options options{.polling = {.max_ns = poll_max_ns}};
    corio::io_thread a("pingpong-a", options);
    corio::io_thread b("pingpong-b", options);
    corio::context home({.name = "pingpong-main", .polling = {.max_ns = 0}});
    round_counter counter;
    corio::run(home, bounce(a.get_context(), b.get_context(), where, counter, sharing));
    activity.rounds += counter.rounds();
    activity.add(a.get_context().stats());
    activity.add(b.get_context().stats());
    return counter.rate();
}

// ---- raw threads --------------------------------------------------------------------------

/// A thread's wake-up: an eventfd watched by an epoll instance of its own.
class eventfd_waiter {
public:
    eventfd_waiter() : efd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), epfd_(epoll_create1(0)) {
        if (efd_ < 0 || epfd_ < 0) fail_errno("eventfd/epoll_create1");
        epoll_event registration{};
        registration.events = EPOLLIN;
        if (epoll_ctl(epfd_, EPOLL_CTL_ADD, efd_, &registration) < 0) fail_errno("epoll_ctl");
    }
    ~eventfd_waiter() {
        close(epfd_);
        close(efd_);
    }
    eventfd_waiter(const eventfd_waiter&) = delete;
    eventfd_waiter& operator=(const eventfd_waiter&) = delete;

    void signal() const {
        const std::uint64_t one = 1;
        if (write(efd_, &one, sizeof one) != sizeof one) fail_errno("write(eventfd)");
    }
    /// Blocks until signalled, and consumes the signal.
    void wait() const {
        for (;;) {
            epoll_event event;
            const int n = epoll_wait(epfd_, &event, 1, -1);
            if (n < 0 && errno != EINTR) fail_errno("epoll_wait");
            std::uint64_t count;
            if (n > 0 && read(efd_, &count, sizeof count) == sizeof count) return;
        }
    }

private:
    int efd_;
    int epfd_;
};

double epoll_eventfd_rep(placement where, cpu_sharing& sharing) {
    eventfd_waiter a;
    eventfd_waiter b;
    // Set by A before its last signal to B, read by B after each wait (relaxed: the eventfd
    // write and read order them).
    std::atomic<bool> finished{false};
    std::thread side_b([&] {
        pin_to(where.cpu_b);
        for (;;) {
            b.wait();
            if (finished.load(std::memory_order_relaxed)) return;
            sharing.b_answers();
            a.signal();
        }
    });
    round_counter counter;
    std::thread side_a([&] {
        pin_to(where.cpu_a);
        do {
            for (std::uint64_t i = 0; i < batch; ++i) {
                b.signal();
                a.wait();
            }
            sharing.a_samples();
        } while (counter.next_batch());
        finished.store(true, std::memory_order_relaxed);
        b.signal();
    });
    side_a.join();
    side_b.join();
    return counter.rate();
}

double spin_atomic_rep(placement where, cpu_sharing& sharing) {
    // Ping and pong share one cache line, which then just moves back and forth: the fastest
    // layout for a spinning pair. `finished` has a line of its own.
    struct alignas(spin_alignment) {
        std::atomic<std::uint64_t> ping{0};
        std::atomic<std::uint64_t> pong{0};
    } line;
    alignas(spin_alignment) std::atomic<bool> finished{false};
    std::thread side_b([&] {
        pin_to(where.cpu_b);
        std::uint64_t seen = 0;
        // acquire/release: each side publishes its round number only (nothing else is shared).
        while (!finished.load(std::memory_order_acquire)) {
            const std::uint64_t n = line.ping.load(std::memory_order_acquire);
            if (n == seen) continue;
            // Once per batch: a CPU look-up is 5% of a round trip here.
            if (n % batch == 0) sharing.b_answers();
            line.pong.store(seen = n, std::memory_order_release);
        }
    });
    round_counter counter;
    std::thread side_a([&] {
        pin_to(where.cpu_a);
        std::uint64_t n = 0;
        do {
            for (std::uint64_t i = 0; i < batch; ++i) {
                line.ping.store(++n, std::memory_order_release);
                while (line.pong.load(std::memory_order_acquire) != n) {
                }
            }
            sharing.a_samples();
        } while (counter.next_batch());
        finished.store(true, std::memory_order_release);
    });
    side_a.join();
    side_b.join();
    return counter.rate();
}

#if CORIO_BENCH_HAVE_ASIO
/// The Asio round trip: A's handler posts to B, whose handler posts back to A. Both
/// io_contexts are default-constructed (what an application writes) and kept alive by work
/// guards until the window is over.
double asio_post_rep(placement where, cpu_sharing& sharing) {
    asio::io_context a;
    asio::io_context b;
    auto guard_a = asio::make_work_guard(a);
    auto guard_b = asio::make_work_guard(b);
    round_counter counter;
    std::uint64_t in_batch = 0;  // touched by one handler at a time (the chain is sequential)
    std::function<void()> on_a;
    on_a = [&] {
        if (++in_batch == batch) {
            in_batch = 0;
            sharing.a_samples();
            if (!counter.next_batch()) {
                guard_a.reset();
                guard_b.reset();
                return;
            }
        }
        asio::post(b, [&] {
            sharing.b_answers();
            asio::post(a, [&] { on_a(); });
        });
    };
    std::thread side_b([&] {
        pin_to(where.cpu_b);
        b.run();
    });
    asio::post(b, [&] { asio::post(a, [&] { on_a(); }); });
    std::thread side_a([&] {
        pin_to(where.cpu_a);
        a.run();
    });
    side_a.join();
    side_b.join();
    return counter.rate();
}
#endif

struct variant {
    std::string name;
    std::function<double(cpu_sharing&)> rep;
    loop_activity* activity = nullptr;  // corio's only
    std::vector<double> values = {};
    std::unique_ptr<cpu_sharing> sharing = std::make_unique<cpu_sharing>();
};

/// Two CPUs this process may run on, for the pinned variants; none if it has only one.
std::optional<placement> two_cpus() {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) fail_errno("sched_getaffinity");
    placement where;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (where.cpu_a < 0) {
            where.cpu_a = cpu;
        } else {
            where.cpu_b = cpu;
            return where;
        }
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string backend = bench::backend_name();
    const corio::poll_params defaults{};
    const std::optional<placement> pinned = two_cpus();
    bench::note(
        "bench=pingpong corio-backend={} window={}ms warmup={} reps={} poll max_ns={} pinned={}",
        backend, window.count(), warmup_rounds, reps, defaults.max_ns,
        pinned ? fmt::format("cpu{}+cpu{}", pinned->cpu_a, pinned->cpu_b) : "no (one CPU)");

    std::vector<variant> variants;
    std::deque<loop_activity> activities;  // a deque: the variants keep references
    auto add_variants = [&](placement where, std::string_view suffix) {
        for (const auto& [name, max_ns] :
             {std::pair<std::string_view, std::int64_t>{"corio-nopoll", 0},
              {"corio-poll", defaults.max_ns}}) {
            loop_activity& activity = activities.emplace_back();
            variants.push_back({fmt::format("{}{}", name, suffix),
                                [&activity, max_ns, where](cpu_sharing& sharing) {
                                    return corio_rep(max_ns, where, sharing, activity);
                                },
                                &activity});
        }
        variants.push_back({fmt::format("epoll-eventfd{}", suffix), [where](cpu_sharing& sharing) {
                                return epoll_eventfd_rep(where, sharing);
                            }});
#if CORIO_BENCH_HAVE_ASIO
        variants.push_back({fmt::format("asio-post{}", suffix), [where](cpu_sharing& sharing) {
                                return asio_post_rep(where, sharing);
                            }});
#endif
    };
    add_variants({}, "");
    if (pinned) add_variants(*pinned, "_pinned");
    // The limit needs both sides running at once: pinned apart whenever possible.
    const placement apart = pinned.value_or(placement{});
    variants.push_back(
        {"spin-atomic", [apart](cpu_sharing& sharing) { return spin_atomic_rep(apart, sharing); }});

    if (argc > 1) {
        const std::vector<std::string_view> wanted(argv + 1, argv + argc);
        std::erase_if(variants, [&wanted](const variant& v) {
            return std::find(wanted.begin(), wanted.end(), v.name) == wanted.end();
        });
    }
    // Warm-up (thread stacks, page faults, caches), not counted.
    for (variant& v : variants) v.rep(*v.sharing);
    for (variant& v : variants) {
        v.sharing->reset();
        if (v.activity) *v.activity = {};
    }
    for (int i = 0; i < reps; ++i) {
        for (variant& v : variants) v.values.push_back(v.rep(*v.sharing));
    }
    for (variant& v : variants) {
        bench::report("pingpong", v.name, bench::median(v.values), unit);
    }
#if !CORIO_BENCH_HAVE_ASIO
    bench::report_skipped("pingpong", "asio", "libasio-dev not installed");
#endif
    for (const variant& v : variants) {
        bench::note("{}: {}{}", v.name, v.sharing->summary(),
                    v.activity ? v.activity->summary() : std::string());
    }
    auto median_of = [&variants](const std::string& name) {
        for (const variant& v : variants) {
            if (v.name == name) return bench::median(v.values);
        }
        return 0.0;  // not run
    };
    const double spin = median_of("spin-atomic");
    for (std::string_view suffix : {"", "_pinned"}) {
        const double poll = median_of(fmt::format("corio-poll{}", suffix));
        const double nopoll = median_of(fmt::format("corio-nopoll{}", suffix));
        const double asio = median_of(fmt::format("asio-post{}", suffix));
        if (spin > 0 && poll > 0) {
            bench::note("corio-poll{}: {:.2f}x slower than spin-atomic (target: within 3x)", suffix,
                        spin / poll);
        }
        if (nopoll > 0 && asio > 0) {
            bench::note("corio-nopoll{0}: {1:.2f}x asio-post{0} (target: >= 1.5x)", suffix,
                        nopoll / asio);
        }
    }
    return 0;
}
