// Cross-thread stress: many threads schedule, wake and move coroutines, schedule bottom halves
// that their owner keeps deleting and recreating, and offload work while stop requests fly.
// Each test counts every event on both sides (what was asked for, what ran) and checks that
// nothing was lost and nothing happened twice — QEMU's rule that a coroutine is resumed once per
// wake, and that a BH never runs after its deletion. Each is bounded by a watchdog, so a lost
// wake-up fails with the test's name instead of hanging.
//
// Counts are sized for the plain build (the million-hop ping-pong takes most of the time: each
// hop is a cross-thread wake-up). Sanitizer builds use a tenth of each count: ThreadSanitizer is
// 5-15x slower, ASan about 2x, and CI runs both on two cores.
#include "support/loop_fixture.hpp"

#include <corio/io_thread.hpp>
#include <corio/offload.hpp>
#include <corio/schedule.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using corio::context;
using corio::coroutine;
using corio::io_thread;
using corio::task;
using corio::test::watchdog;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr long count_divisor = 10;  // see the file comment
#else
constexpr long count_divisor = 1;
#endif

constexpr long scaled(long plain_count) {
    return plain_count / count_divisor;
}

// std::this_thread::get_id() through a call the compiler cannot see into: a coroutine that
// moves between threads must not have it folded across a co_await.
[[gnu::noinline]] std::thread::id thread_now() {
    std::thread::id id = std::this_thread::get_id();
    asm volatile("" : "+m"(id));
    return id;
}

// Busy work the optimizer keeps: widens race windows by a random amount.
[[gnu::noinline]] void spin(unsigned iterations) {
    for (unsigned i = 0; i < iterations; ++i) asm volatile("" ::: "memory");
}

// Runs `fn` on `t`'s loop and returns its result (blocking the caller).
template <class Fn>
auto on(io_thread& t, Fn fn) {
    using value_type = decltype(fn());
    std::promise<value_type> p;
    auto f = p.get_future();
    t.get_context().post(
        [&] {
            if constexpr (std::is_void_v<value_type>) {
                fn();
                p.set_value();
            } else {
                p.set_value(fn());
            }
        },
        "on");
    return f.get();
}

template <class T>
task<void> join_all(std::vector<corio::join_handle<T>>& handles) {
    for (auto& h : handles) co_await h;
}

// ---- 1. co_schedule from several threads onto one context --------------------------------

// A coroutine that parks itself `quota` times; each park is ended by one co_schedule from the
// thread that serves its slot.
struct parked_slot {
    std::atomic<coroutine> parked{};     // the parked coroutine, until its thread takes it
    std::atomic<long> scheduled{0};      // its thread: before each co_schedule
    long resumed = 0;                    // the target context's thread only
    std::atomic<long>* parks = nullptr;  // its thread's doorbell
};

struct schedule_tally {
    long mismatched = 0;  // a resumption that did not follow exactly one schedule
    long misplaced = 0;   // a resumption on another context
    int finished = 0;
};

task<void> park_repeatedly(parked_slot& slot, long quota, context& home, schedule_tally& tally) {
    for (long i = 0; i < quota; ++i) {
        co_await corio::suspend([&slot](coroutine self) {
            slot.parked.store(self, std::memory_order_release);
            slot.parks->fetch_add(1, std::memory_order_release);
            slot.parks->notify_one();
        });
        ++slot.resumed;
        if (slot.scheduled.load(std::memory_order_relaxed) != slot.resumed) ++tally.mismatched;
        if (context::current() != &home) ++tally.misplaced;
    }
    ++tally.finished;
}

}  // namespace

TEST_CASE("four threads co_schedule onto one context: every schedule resumes exactly once") {
    watchdog guard("co_schedule from four threads onto one context");
    context ctx{corio::context_options{.name = "target"}};
    constexpr int threads = 4;
    constexpr int per_thread = 16;  // coroutines whose slots each thread serves
    constexpr int coroutines = threads * per_thread;
    constexpr long total = scaled(1'000'000);
    constexpr long quota = total / coroutines;

    // A thread with nothing to schedule sleeps on its doorbell instead of spinning: on two
    // cores, four spinning threads would starve the one thread that resumes the coroutines.
    std::array<std::atomic<long>, threads> doorbells{};
    std::array<parked_slot, coroutines> slots;
    for (int i = 0; i < coroutines; ++i) slots[i].parks = &doorbells[i / per_thread];
    schedule_tally tally;
    std::vector<corio::join_handle<void>> handles;
    for (auto& slot : slots) {
        handles.push_back(corio::spawn(ctx, park_repeatedly(slot, quota, ctx, tally)));
    }
    std::vector<std::thread> hammers;
    for (int t = 0; t < threads; ++t) {
        hammers.emplace_back([&, t] {
            long left = quota * per_thread;
            while (left > 0) {
                const long rung = doorbells[t].load(std::memory_order_acquire);
                bool found = false;
                for (int i = t * per_thread; i < (t + 1) * per_thread; ++i) {
                    // Taking the handle (acquire) pairs with the park's release store: the
                    // coroutine has fully suspended, and it is ours alone to schedule.
                    const coroutine co = slots[i].parked.exchange({}, std::memory_order_acquire);
                    if (!co) continue;
                    found = true;
                    slots[i].scheduled.fetch_add(1, std::memory_order_relaxed);
                    corio::co_schedule(ctx, co);
                    --left;
                }
                // A park after the load above changed the doorbell: no wake-up is missed.
                if (!found && left > 0) doorbells[t].wait(rung, std::memory_order_acquire);
            }
        });
    }
    ctx.run_until([&] { return tally.finished == coroutines; });
    for (auto& t : hammers) t.join();

    long resumed = 0;
    long scheduled = 0;
    for (auto& slot : slots) {
        resumed += slot.resumed;
        scheduled += slot.scheduled.load();
        CHECK(slot.resumed == quota);
    }
    CHECK(scheduled == quota * coroutines);
    CHECK(resumed == scheduled);
    CHECK(tally.mismatched == 0);
    CHECK(tally.misplaced == 0);
    for (auto& h : handles) CHECK(h.done());
}

// ---- 2. reschedule_self ping-pong between two io_threads --------------------------------

namespace {

task<long> ping_pong(io_thread& a, io_thread& b, long round_trips, long& misplaced) {
    long hops = 0;
    for (long i = 0; i < round_trips; ++i) {
        co_await corio::reschedule_self{a.get_context()};
        if (thread_now() != a.thread_id() || context::current() != &a.get_context()) ++misplaced;
        ++hops;
        co_await corio::reschedule_self{b.get_context()};
        if (thread_now() != b.thread_id() || context::current() != &b.get_context()) ++misplaced;
        ++hops;
    }
    co_return hops;
}

}  // namespace

TEST_CASE("a coroutine ping-pongs between two io_threads and runs on the right one each hop") {
    watchdog guard("reschedule_self ping-pong between two io_threads");
    context ctx{corio::context_options{.name = "main"}};
    io_thread a("ping");
    io_thread b("pong");
    constexpr long hops = scaled(1'000'000);
    long misplaced = 0;
    const long done = corio::run(ctx, ping_pong(a, b, hops / 2, misplaced));
    CHECK(done == hops);
    CHECK(misplaced == 0);
}

// ---- 3. BH schedules from three threads while the owner deletes and recreates the BHs ----
//
// Protocol (hazard pointers): the owner publishes each slot's current BH generation in an
// atomic. A scheduler announces the generation it is about to use in its hazard, re-reads the
// slot and retries if it changed; it clears the hazard once schedule() has returned. The owner
// replaces a generation by publishing the new one, waits until no hazard names the old one,
// then marks it retired and deletes its BH. Store-then-load on both sides (hazard then slot;
// slot then hazard) is Dekker's pattern, so all four accesses are seq_cst: either the owner
// sees the hazard and waits, or the scheduler sees the new generation and retries.

namespace {

struct bh_generation {
    corio::bottom_half bh;             // owner: created before publication, reset when retired
    std::atomic<long> tickets{0};      // schedulers: incremented before each schedule()
    std::atomic<long> seen{0};         // the callback: `tickets` as of its latest run
    std::atomic<bool> retired{false};  // owner: set before the BH is deleted
    long runs = 0;                     // the home thread
};

struct bh_slot {
    std::atomic<bh_generation*> current{nullptr};
};

struct bh_stress {
    static constexpr int slot_count = 4;
    static constexpr int scheduler_count = 3;

    context& ctx;
    std::deque<bh_generation> generations;  // owner only; elements never move
    std::array<bh_slot, slot_count> slots;
    std::array<std::atomic<bh_generation*>, scheduler_count> hazards{};
    long runs = 0;               // every run of every generation (home thread)
    long runs_after_delete = 0;  // must stay 0 (home thread)
    long self_retirements = 0;   // generations deleted from their own callback
    long deleted_pending = 0;    // generations deleted with a schedule not yet run
    long self_retirement_budget = 0;

    explicit bh_stress(context& c, long self_retire) : ctx(c), self_retirement_budget(self_retire) {
        for (auto& slot : slots) slot.current.store(create(), std::memory_order_seq_cst);
    }

    bh_generation* create() {
        bh_generation& g = generations.emplace_back();
        g.bh = ctx.make_bh([this, &g] { on_run(g); }, "stress");
        return &g;
    }

    void on_run(bh_generation& g) {
        if (g.retired.load(std::memory_order_relaxed)) ++runs_after_delete;
        ++g.runs;
        ++runs;
        // Every ticket taken before a schedule() this run answers is visible here (the BH
        // flags' acq_rel read-modify-writes order them).
        g.seen.store(g.tickets.load(std::memory_order_relaxed), std::memory_order_release);
        // Now and then a BH deletes itself from its own callback (deferred free).
        if (g.runs == 2 && self_retirement_budget > 0) {
            for (auto& slot : slots) {
                if (slot.current.load(std::memory_order_relaxed) == &g) {
                    --self_retirement_budget;
                    ++self_retirements;
                    replace(slot);
                    break;
                }
            }
        }
    }

    // Owner: publish a fresh generation, wait out the hazards on the old one, delete it.
    void replace(bh_slot& slot) {
        bh_generation* old = slot.current.exchange(create(), std::memory_order_seq_cst);
        for (auto& h : hazards) {
            while (h.load(std::memory_order_seq_cst) == old) std::this_thread::yield();
        }
        // No schedule() of `old` is in progress any more: its tickets are final.
        if (old->tickets.load(std::memory_order_relaxed) >
            old->seen.load(std::memory_order_relaxed)) {
            ++deleted_pending;
        }
        old->retired.store(true, std::memory_order_release);
        old->bh.reset();
    }

    // Scheduler `me`: one schedule() of the current generation of a slot, under a hazard.
    // Returns the generation and the ticket taken.
    std::pair<bh_generation*, long> schedule_one(int me, bh_slot& slot) {
        bh_generation* g = slot.current.load(std::memory_order_seq_cst);
        for (;;) {
            hazards[me].store(g, std::memory_order_seq_cst);
            bh_generation* again = slot.current.load(std::memory_order_seq_cst);
            if (again == g) break;
            g = again;
        }
        const long ticket = g->tickets.fetch_add(1, std::memory_order_relaxed) + 1;
        g->bh.schedule();
        // Pairs with the owner's hazard load: this schedule() is over before the BH dies.
        hazards[me].store(nullptr, std::memory_order_release);
        return {g, ticket};
    }
};

}  // namespace

TEST_CASE("BHs scheduled from three threads while the owner deletes and recreates them") {
    watchdog guard("BH schedules racing deletion and recreation");
    context ctx{corio::context_options{.name = "owner"}};
    constexpr long replacements = scaled(50'000);
    bh_stress s(ctx, replacements / 4);
    const std::uint64_t runs_before = ctx.stats().bh_runs;

    std::atomic<bool> stop{false};
    std::atomic<int> schedulers_done{0};
    std::atomic<long> schedules{0};
    std::vector<std::thread> schedulers;
    for (int me = 0; me < bh_stress::scheduler_count; ++me) {
        schedulers.emplace_back([&, me] {
            std::minstd_rand rng(static_cast<unsigned>(me) + 1);
            long mine = 0;
            for (bool last = false; !last;) {
                last = stop.load(std::memory_order_relaxed);
                auto [g, ticket] = s.schedule_one(me, s.slots[rng() % bh_stress::slot_count]);
                ++mine;
                // Now and then (and at the end) wait until a run has answered this schedule, or
                // the BH was deleted: a schedule that is never answered is a lost wake-up (the
                // watchdog reports it). The generation record outlives the test's threads.
                if (last || mine % 64 == 0) {
                    while (g->seen.load(std::memory_order_acquire) < ticket &&
                           !g->retired.load(std::memory_order_acquire)) {
                        std::this_thread::yield();
                    }
                }
            }
            schedules.fetch_add(mine);
            schedulers_done.fetch_add(1);
            ctx.notify();  // the owner's loop condition reads `schedulers_done`
        });
    }
    for (long i = 0; i < replacements; ++i) {
        ctx.poll(true);
        s.replace(s.slots[i % bh_stress::slot_count]);
    }
    stop.store(true);
    corio::test::poll_until(ctx,
                            [&] { return schedulers_done.load() == bh_stress::scheduler_count; });
    for (auto& t : schedulers) t.join();

    // Pending runs of deleted BHs must not happen: schedule and delete the last generations,
    // then let the loop drain.
    for (auto& slot : s.slots) {
        bh_generation* g = slot.current.exchange(nullptr);
        g->bh.schedule();
        g->retired.store(true);
        g->bh.reset();
    }
    while (ctx.poll(false)) {
    }

    long tickets = 0;
    long over_run = 0;  // generations that ran more often than they were scheduled
    for (auto& g : s.generations) {
        tickets += g.tickets.load();
        if (g.runs > g.tickets.load()) ++over_run;
    }
    CHECK(s.runs_after_delete == 0);
    CHECK(over_run == 0);
    CHECK(tickets == schedules.load());
    CHECK(s.runs <= tickets);
    CHECK(ctx.stats().bh_runs - runs_before == static_cast<std::uint64_t>(s.runs));
    CHECK(s.generations.size() ==
          static_cast<std::size_t>(bh_stress::slot_count + replacements + s.self_retirements));
    CHECK(s.self_retirements > 0);
    MESSAGE("schedules: " << tickets << ", runs: " << s.runs << ", BHs deleted while scheduled: "
                          << s.deleted_pending << " of " << s.generations.size());
    CHECK(s.deleted_pending > 0);  // the race under test did happen
}

// ---- 4. co_wake around a ring of io_threads, racing the target's suspension -------------

namespace {

struct ring_member {
    std::atomic<coroutine> handle{};  // published at its first suspension
    std::atomic<long> woken{0};       // its waker: before each co_wake
    long resumed = 0;                 // its own thread
    long mismatched = 0;              // a resumption that did not follow exactly one wake
    long misplaced = 0;               // a resumption off its io_thread
    long early = 0;                   // wakes that came before it had finished suspending
};

constexpr int ring_length = 3;

struct ring {
    std::array<ring_member, ring_length> members;
    std::atomic<int> published{0};
};

void wake(ring_member& m) {
    m.woken.fetch_add(1, std::memory_order_relaxed);
    corio::co_wake(m.handle.load(std::memory_order_acquire));
}

// Member `i` of `r`: woken `rounds` times; after each resumption it wakes the next member and
// then keeps busy before suspending — until the token has come back around, or for a random
// while — so the next wake often arrives while it is still running or suspending (QEMU's J4:
// woken before it has yielded; it must be entered only once it has).
task<void> ring_member_loop(ring& r, int i, const io_thread& home, long rounds) {
    ring_member& me = r.members[i];
    ring_member& next = r.members[(i + 1) % ring_length];
    std::minstd_rand rng(static_cast<unsigned>(i) + 7);
    for (long k = 0; k < rounds; ++k) {
        co_await corio::suspend([&me, &r, k](coroutine self) {
            if (me.woken.load(std::memory_order_relaxed) > me.resumed) ++me.early;
            if (k == 0) {
                me.handle.store(self, std::memory_order_release);
                // The last member to publish its handle starts the token round.
                if (r.published.fetch_add(1, std::memory_order_acq_rel) + 1 == ring_length) {
                    wake(r.members[0]);
                }
            }
        });
        ++me.resumed;
        if (me.woken.load(std::memory_order_relaxed) != me.resumed) ++me.mismatched;
        if (thread_now() != home.thread_id()) ++me.misplaced;
        if (i != ring_length - 1 || k != rounds - 1) wake(next);  // the last one ends the ring
        for (unsigned n = static_cast<unsigned>(rng() % scaled(32768)); n > 0; --n) {
            if (me.woken.load(std::memory_order_relaxed) != me.resumed) break;
        }
    }
}

}  // namespace

TEST_CASE("co_wake passes tokens around a ring of io_threads, racing each target's suspension") {
    watchdog guard("co_wake ring across io_threads");
    context ctx{corio::context_options{.name = "main"}};
    std::array<std::unique_ptr<io_thread>, ring_length> threads;
    for (int i = 0; i < ring_length; ++i) {
        threads[i] = std::make_unique<io_thread>("ring-" + std::to_string(i));
    }
    constexpr int ring_count = 4;  // rings share the threads; each carries one token
    constexpr long rounds = scaled(20'000);
    std::array<ring, ring_count> rings;
    std::vector<corio::join_handle<void>> handles;
    for (auto& r : rings) {
        for (int i = 0; i < ring_length; ++i) {
            handles.push_back(corio::spawn(threads[i]->get_context(),
                                           ring_member_loop(r, i, *threads[i], rounds)));
        }
    }
    corio::run(ctx, join_all(handles));

    long early = 0;
    for (auto& r : rings) {
        for (auto& m : r.members) {
            CHECK(m.resumed == rounds);
            CHECK(m.woken.load() == rounds);
            CHECK(m.mismatched == 0);
            CHECK(m.misplaced == 0);
            early += m.early;
        }
    }
    MESSAGE("wakes that raced the target's suspension: " << early << " of "
                                                         << ring_count * ring_length * rounds);
    CHECK(early > 0);  // the race under test did happen
}

// ---- 5. offload from three io_threads at once, with random stop requests ----------------

namespace {

struct job_record {
    std::atomic<int> executions{0};  // the work function, on a worker
    int executions_at_result = -1;   // as the coroutine saw it when the result came
    // 1: the right value; 2: ECANCELED; 3: anything else — another error, a wrong value, or a
    // value although the work's own stop request came first (that result must be dropped).
    int outcome = 0;
    bool stopped_itself = false;  // its own stop request was the first (on its worker)
};

struct stop_table {
    std::mutex mutex;
    std::vector<std::stop_source> sources;  // one per coroutine, replaced for each offload
};

task<void> offload_repeatedly(std::vector<job_record>& jobs, long first_job, long count,
                              stop_table& stops, std::size_t stop_slot, const io_thread& home,
                              long& misplaced) {
    std::minstd_rand rng(static_cast<unsigned>(first_job) + 1);
    for (long j = first_job; j < first_job + count; ++j) {
        std::stop_source source;
        {
            const std::lock_guard lock(stops.mutex);
            stops.sources[stop_slot] = corio::test::new_stop_source();
            source = stops.sources[stop_slot];
        }
        job_record& job = jobs[static_cast<std::size_t>(j)];
        const unsigned work = static_cast<unsigned>(rng() % 8192);
        // Every eighth job requests a stop while it runs: unless the stop thread came first,
        // its result must be dropped. The stop thread's requests land at random moments.
        const bool stop_itself = j % 8 == 0;
        // Named, not written inside the co_await expression: GCC 12 destroys the captures of
        // a lambda temporary in a co_await expression twice (here: the stop_source).
        auto work_fn = [&job, j, work, stop_itself, source]() mutable {
            job.executions.fetch_add(1, std::memory_order_relaxed);
            if (stop_itself) job.stopped_itself = source.request_stop();
            spin(work);
            return j * 3;
        };
        corio::result<long> r = co_await corio::offload(work_fn, source.get_token());
        job.executions_at_result = job.executions.load(std::memory_order_relaxed);
        if (r) {
            job.outcome = *r == j * 3 && !job.stopped_itself ? 1 : 3;
        } else {
            job.outcome = r.error() == std::errc::operation_canceled ? 2 : 3;
        }
        if (thread_now() != home.thread_id()) ++misplaced;
    }
}

}  // namespace

TEST_CASE("offload from three io_threads at once while another thread requests random stops") {
    watchdog guard("offload from three io_threads with random stops");
    context ctx{corio::context_options{.name = "main"}};
    constexpr int thread_count = 3;
    constexpr int per_thread = 8;  // coroutines offloading on each io_thread
    constexpr long jobs_each = scaled(4'000);
    constexpr long jobs_per_thread = per_thread * jobs_each;
    std::array<std::unique_ptr<io_thread>, thread_count> threads;
    for (int i = 0; i < thread_count; ++i) {
        threads[i] = std::make_unique<io_thread>("offload-" + std::to_string(i));
    }
    // Different pool shapes: few workers, workers that retire quickly, the defaults.
    on(*threads[0], [&] { threads[0]->get_context().pool().set_limits(0, 2); });
    on(*threads[1], [&] {
        threads[1]->get_context().pool().set_limits(1, 6);
        threads[1]->get_context().pool().set_idle_timeout(1ms);
    });

    std::vector<job_record> jobs(static_cast<std::size_t>(thread_count * jobs_per_thread));
    stop_table stops;
    stops.sources.resize(thread_count * per_thread);
    std::array<long, thread_count> misplaced{};
    std::vector<corio::join_handle<void>> handles;
    for (int t = 0; t < thread_count; ++t) {
        for (int c = 0; c < per_thread; ++c) {
            const long first = t * jobs_per_thread + c * jobs_each;
            handles.push_back(
                corio::spawn(threads[t]->get_context(),
                             offload_repeatedly(jobs, first, jobs_each, stops,
                                                static_cast<std::size_t>(t * per_thread + c),
                                                *threads[t], misplaced[t])));
        }
    }
    std::atomic<bool> finished{false};
    std::atomic<long> stop_requests{0};
    std::thread chaos([&] {
        std::minstd_rand rng(99);
        while (!finished.load(std::memory_order_relaxed)) {
            {
                const std::lock_guard lock(stops.mutex);
                if (stops.sources[rng() % stops.sources.size()].request_stop()) {
                    stop_requests.fetch_add(1, std::memory_order_relaxed);
                }
            }
            std::this_thread::yield();
        }
    });
    corio::run(ctx, join_all(handles));
    finished.store(true);
    chaos.join();

    long values = 0;
    long cancelled = 0;
    long other = 0;
    long ran_twice = 0;
    long ran_after_result = 0;
    long value_without_run = 0;
    long stopped_itself = 0;
    for (int t = 0; t < thread_count; ++t) {
        long executed = 0;
        long dropped = 0;  // ran, but a stop request came meanwhile: ECANCELED
        long context_cancelled = 0;
        for (long j = t * jobs_per_thread; j < (t + 1) * jobs_per_thread; ++j) {
            const job_record& job = jobs[static_cast<std::size_t>(j)];
            const int runs = job.executions.load();
            executed += runs;
            if (runs > 1) ++ran_twice;
            if (runs != job.executions_at_result) ++ran_after_result;
            if (job.stopped_itself) ++stopped_itself;
            if (job.outcome == 1) {
                ++values;
                if (runs != 1) ++value_without_run;
            } else if (job.outcome == 2) {
                ++cancelled;
                ++context_cancelled;
                if (runs == 1) ++dropped;
            } else {
                ++other;
            }
        }
        const corio::thread_pool_stats st =
            on(*threads[t], [&] { return threads[t]->get_context().pool().stats(); });
        CHECK(st.queued == 0);
        CHECK(st.running == 0);
        CHECK(static_cast<long>(st.completed) == executed);
        // The pool counts cancellations it saw: all but those stopped before submission.
        CHECK(static_cast<long>(st.cancelled) >= dropped);
        CHECK(static_cast<long>(st.cancelled) <= context_cancelled);
        CHECK(misplaced[t] == 0);
    }
    CHECK(values + cancelled == thread_count * jobs_per_thread);
    CHECK(other == 0);
    CHECK(ran_twice == 0);
    CHECK(ran_after_result == 0);
    CHECK(value_without_run == 0);
    MESSAGE("values: " << values << ", cancelled: " << cancelled
                       << ", stop requests: " << stop_requests.load());
    CHECK(values > 0);
    CHECK(stopped_itself > 0);
    CHECK(cancelled >= stopped_itself);
}
