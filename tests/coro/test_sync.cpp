// Coroutine synchronization: co_mutex (QEMU's CoMutex: FIFO hand-off, no barging, deferred
// same-context wake), co_queue, co_rwlock (writer preference, upgrade/downgrade), co_event,
// co_semaphore, channel<T>; cancellation of waits; contention across threads; misuse.
#include "support/loop_fixture.hpp"

#include <corio/channel.hpp>
#include <corio/schedule.hpp>
#include <corio/spawn.hpp>
#include <corio/sync.hpp>
#include <corio/when_all.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

using corio::channel;
using corio::co_event;
using corio::co_mutex;
using corio::co_queue;
using corio::co_rwlock;
using corio::co_semaphore;
using corio::context;
using corio::coroutine;
using corio::result;
using corio::task;
using corio::test::loop_fixture;
using corio::test::poll_until;

namespace {

// Lets every other ready coroutine of this context run: back in the queue behind them.
auto yield_now() {
    return corio::suspend([](coroutine self) { corio::co_schedule(*self.home(), self); });
}

void drain(context& ctx) {
    while (ctx.poll(false)) {
    }
}

using log_t = std::vector<std::string>;

task<void> lock_and_log(co_mutex& m, log_t& log, std::string name) {
    co_await m.lock();
    log.push_back(name);
    m.unlock();
}

bool is_cancelled(const result<void>& r) {
    return r.error() == std::errc::operation_canceled;
}

}  // namespace

// ---- co_mutex ---------------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture,
                  "a co_mutex keeps many coroutines on one context out of each other's way") {
    constexpr int coroutines = 50;
    constexpr int rounds = 20;
    co_mutex m;
    long counter = 0;
    bool inside = false;
    bool overlap = false;
    auto body = [](co_mutex& mu, long& c, bool& in, bool& ov) -> task<void> {
        for (int i = 0; i < rounds; ++i) {
            auto guard = co_await mu.scoped();
            if (in) ov = true;
            in = true;
            const long seen = c;
            co_await yield_now();  // everybody else gets to run (and to try the mutex)
            c = seen + 1;
            in = false;
        }
    };
    std::vector<corio::join_handle<void>> all;
    for (int i = 0; i < coroutines; ++i)
        all.push_back(corio::spawn(ctx, body(m, counter, inside, overlap)));
    poll_until(ctx, [&] {
        for (auto& h : all) {
            if (!h.done()) return false;
        }
        return true;
    });
    CHECK_FALSE(overlap);
    CHECK(counter == coroutines * rounds);
    CHECK_FALSE(m.is_locked());
}

TEST_CASE_FIXTURE(loop_fixture, "unlock hands the mutex to the waiters in the order they came") {
    co_mutex m;
    log_t log;
    auto holder = corio::spawn(ctx, [](co_mutex& mu, log_t& l) -> task<void> {
        co_await mu.lock();
        co_await yield_now();  // the others queue up meanwhile
        co_await yield_now();
        l.push_back("holder");
        mu.unlock();
    }(m, log));
    std::vector<corio::join_handle<void>> waiters;
    for (const char* name : {"w1", "w2", "w3", "w4"}) {
        waiters.push_back(corio::spawn(ctx, lock_and_log(m, log, name)));
    }
    poll_until(ctx, [&] { return log.size() == 5; });
    CHECK(log == log_t{"holder", "w1", "w2", "w3", "w4"});
    drain(ctx);
    CHECK(holder.done());
}

TEST_CASE_FIXTURE(loop_fixture, "a newcomer cannot take a mutex that a waiter was handed") {
    co_mutex m;
    log_t log;
    bool stole = true;
    bool still_locked = false;
    auto holder =
        corio::spawn(ctx, [](co_mutex& mu, log_t& l, bool& s, bool& locked) -> task<void> {
            co_await mu.lock();
            co_await yield_now();  // the waiter queues
            mu.unlock();           // hands over: the waiter owns it, though it has not run yet
            locked = mu.is_locked();
            s = mu.try_lock();  // no barging, even by the previous holder
            l.push_back("holder done");
        }(m, log, stole, still_locked));
    auto waiter = corio::spawn(ctx, lock_and_log(m, log, "waiter"));
    poll_until(ctx, [&] { return holder.done() && waiter.done(); });
    CHECK(still_locked);
    CHECK_FALSE(stole);
    CHECK(log == log_t{"holder done", "waiter"});
    CHECK_FALSE(m.is_locked());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a same-context waiter woken by unlock runs only after the unlocker suspends") {
    co_mutex m;
    log_t log;
    auto holder = corio::spawn(ctx, [](co_mutex& mu, log_t& l) -> task<void> {
        co_await mu.lock();
        co_await yield_now();
        mu.unlock();
        l.push_back("unlocked");
        l.push_back("still running");  // the waiter must not have run inside unlock()
        co_await yield_now();
        l.push_back("resumed");
    }(m, log));
    auto waiter = corio::spawn(ctx, lock_and_log(m, log, "waiter"));
    poll_until(ctx, [&] { return holder.done() && waiter.done(); });
    CHECK(log == log_t{"unlocked", "still running", "waiter", "resumed"});
}

TEST_CASE_FIXTURE(loop_fixture, "try_lock takes a free mutex and fails on a held one") {
    const auto [first, second] = corio::run(ctx, [](co_mutex& mu) -> task<std::pair<bool, bool>> {
        const bool a = mu.try_lock();
        const bool b = mu.try_lock();
        mu.unlock();
        co_return std::pair{a, b};
    }(*std::make_unique<co_mutex>()));
    CHECK(first);
    CHECK_FALSE(second);
}

namespace {

// A context on its own thread hammering one mutex; `counter` is deliberately not atomic.
task<void> hammer(co_mutex& m, long& counter, int rounds, int id) {
    for (int i = 0; i < rounds; ++i) {
        switch ((i + id) % 8) {
            case 0: {
                auto guard = co_await m.scoped();
                ++counter;
                co_await yield_now();  // suspended while holding: others must queue
                break;
            }
            case 1:
                if (m.try_lock()) {
                    ++counter;
                    m.unlock();
                    break;
                }
                [[fallthrough]];
            default:
                co_await m.lock();
                ++counter;
                m.unlock();
        }
    }
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture,
                  "a co_mutex excludes sixteen coroutines on four threads hammering it") {
    constexpr int threads = 4;
    constexpr int rounds = 50'000;
    co_mutex m;
    long counter = 0;
    std::atomic<int> started{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            context c{corio::context_options{.name = "hammer"}};
            started.fetch_add(1);
            while (started.load() < threads) std::this_thread::yield();  // all at once
            // Four coroutines per thread: a holder on this thread makes the others queue
            // instead of spinning, so waiters from all threads mix in one queue.
            corio::run(c, [](co_mutex& mu, long& n, int id) -> task<void> {
                co_await corio::when_all(
                    hammer(mu, n, rounds / 4, id), hammer(mu, n, rounds / 4, id + 1),
                    hammer(mu, n, rounds / 4, id + 2), hammer(mu, n, rounds / 4, id + 3));
            }(m, counter, t));
        });
    }
    for (auto& th : pool) th.join();
    CHECK(counter == long{threads} * rounds);
    CHECK_FALSE(m.is_locked());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a cancelled lock waiter resumes once with ECANCELED and the hand-off skips it") {
    co_mutex m;
    log_t log;
    std::stop_source stop;
    // Requested while the holder still holds it (the cancellation unlinks the waiter first),
    // or by the holder right before unlocking (the waiter is still listed: unlock skips it).
    bool stop_at_unlock = false;
    SUBCASE("stop requested early") {}
    SUBCASE("stop requested just before the unlock") {
        stop_at_unlock = true;
    }
    auto holder = corio::spawn(
        ctx, [](co_mutex& mu, log_t& l, std::stop_source& st, bool at_unlock) -> task<void> {
            co_await mu.lock();
            co_await yield_now();
            co_await yield_now();
            l.push_back("holder");
            if (at_unlock) st.request_stop();
            mu.unlock();
        }(m, log, stop, stop_at_unlock));
    auto cancelled =
        corio::spawn(ctx, [](co_mutex& mu, std::stop_token st, log_t& l) -> task<void> {
            const result<void> r = co_await mu.lock(st);
            l.push_back(is_cancelled(r) ? "cancelled" : "locked");
            if (r) mu.unlock();
        }(m, stop.get_token(), log));
    auto next = corio::spawn(ctx, lock_and_log(m, log, "next"));
    ctx.poll(false);  // all three started: the holder holds it, the two others are queued
    if (!stop_at_unlock) stop.request_stop();
    poll_until(ctx, [&] { return holder.done() && cancelled.done() && next.done(); });
    drain(ctx);
    if (stop_at_unlock) {
        CHECK(log == log_t{"holder", "next", "cancelled"});
    } else {
        CHECK(log == log_t{"cancelled", "holder", "next"});
    }
    CHECK_FALSE(m.is_locked());
}

TEST_CASE_FIXTURE(loop_fixture, "lock with an already stopped token fails at once, untouched") {
    co_mutex m;
    std::stop_source stop;
    stop.request_stop();
    const result<void> r =
        corio::run(ctx, [](co_mutex& mu, std::stop_token st) -> task<result<void>> {
            co_return co_await mu.lock(st);
        }(m, stop.get_token()));
    CHECK(is_cancelled(r));
    CHECK_FALSE(m.is_locked());
}

// ---- co_queue ---------------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture, "co_queue waiters resume one by one holding the mutex again") {
    co_mutex m;
    co_queue q;
    int ready = 0;
    log_t log;
    auto consumer = [](co_mutex& mu, co_queue& qu, int& r, log_t& l,
                       std::string name) -> task<void> {
        co_await mu.lock();
        while (r == 0) co_await qu.wait(mu);
        CHECK(mu.is_locked());
        --r;
        l.push_back(name);
        mu.unlock();  // aborts unless this coroutine holds it again
    };
    auto c1 = corio::spawn(ctx, consumer(m, q, ready, log, "c1"));
    auto c2 = corio::spawn(ctx, consumer(m, q, ready, log, "c2"));
    auto c3 = corio::spawn(ctx, consumer(m, q, ready, log, "c3"));
    drain(ctx);
    CHECK_FALSE(q.empty());
    CHECK(log.empty());
    auto producer = corio::spawn(ctx, [](co_mutex& mu, co_queue& qu, int& r) -> task<void> {
        co_await mu.lock();
        ++r;
        CHECK(qu.notify_one());
        mu.unlock();
    }(m, q, ready));
    drain(ctx);
    CHECK(log == log_t{"c1"});
    // Two more items, but notify_all: all wake, each re-checks under the mutex.
    auto producer2 = corio::spawn(ctx, [](co_mutex& mu, co_queue& qu, int& r) -> task<void> {
        co_await mu.lock();
        r += 2;
        CHECK(qu.notify_all() == 2);
        mu.unlock();
    }(m, q, ready));
    poll_until(ctx, [&] { return c2.done() && c3.done(); });
    CHECK(log == log_t{"c1", "c2", "c3"});
    CHECK(q.empty());
    CHECK_FALSE(q.notify_one());
    CHECK(producer.done());
    CHECK(producer2.done());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "notify_all with the mutex held morphs the waiters into the mutex queue") {
    co_mutex m;
    co_queue q;
    bool go = false;
    bool inside = false;
    bool overlap = false;
    int finished = 0;
    auto waiter = [](co_mutex& mu, co_queue& qu, bool& g, bool& in, bool& ov,
                     int& f) -> task<void> {
        auto guard = co_await mu.scoped();
        while (!g) co_await qu.wait(mu);
        if (in) ov = true;
        in = true;
        co_await yield_now();  // holding the mutex: the other woken waiters must wait
        in = false;
        ++f;
    };
    std::vector<corio::join_handle<void>> all;
    for (int i = 0; i < 5; ++i)
        all.push_back(corio::spawn(ctx, waiter(m, q, go, inside, overlap, finished)));
    drain(ctx);
    auto notifier = corio::spawn(ctx, [](co_mutex& mu, co_queue& qu, bool& g) -> task<void> {
        co_await mu.lock();
        g = true;
        qu.notify_all();
        co_await yield_now();  // still holding it: nobody woken may run yet
        mu.unlock();
    }(m, q, go));
    poll_until(ctx, [&] { return finished == 5; });
    CHECK_FALSE(overlap);
    CHECK_FALSE(m.is_locked());
    drain(ctx);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "co_queue works with a std::mutex and a notifier on another thread") {
    std::mutex mu;
    co_queue q;
    bool flag = false;
    std::atomic<bool> waiting{false};
    std::thread notifier([&] {
        while (!waiting.load()) std::this_thread::yield();
        for (;;) {  // notify until the waiter was there to be woken
            {
                std::lock_guard g(mu);
                flag = true;
            }
            if (q.notify_one()) break;
            std::this_thread::yield();
        }
    });
    const bool saw = corio::run(
        ctx, [](std::mutex& m, co_queue& qu, bool& f, std::atomic<bool>& w) -> task<bool> {
            std::unique_lock lock(m);
            w.store(true);
            while (!f) co_await qu.wait(lock);
            co_return lock.owns_lock() && f;
        }(mu, q, flag, waiting));
    notifier.join();
    CHECK(saw);
}

// ---- co_rwlock --------------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture, "readers share a co_rwlock, a writer excludes them") {
    co_rwlock l;
    log_t log;
    auto reader = [](co_rwlock& rw, log_t& lg, std::string name) -> task<void> {
        co_await rw.read_lock();
        lg.push_back(name + "+");
        co_await yield_now();
        lg.push_back(name + "-");
        rw.unlock();
    };
    auto writer = [](co_rwlock& rw, log_t& lg) -> task<void> {
        co_await rw.write_lock();
        lg.push_back("w+");
        co_await yield_now();
        lg.push_back("w-");
        rw.unlock();
    };
    auto r1 = corio::spawn(ctx, reader(l, log, "r1"));
    auto r2 = corio::spawn(ctx, reader(l, log, "r2"));
    auto w = corio::spawn(ctx, writer(l, log));
    poll_until(ctx, [&] { return r1.done() && r2.done() && w.done(); });
    // Both readers inside together; the writer only after both left.
    CHECK(log == log_t{"r1+", "r2+", "r1-", "r2-", "w+", "w-"});
}

TEST_CASE_FIXTURE(
    loop_fixture,
    "a queued writer blocks new readers, and its release admits the readers behind it") {
    co_rwlock l;
    log_t log;
    auto reader = [](co_rwlock& rw, log_t& lg, std::string name, int hold) -> task<void> {
        co_await rw.read_lock();
        lg.push_back(name + "+");
        for (int i = 0; i < hold; ++i) co_await yield_now();
        lg.push_back(name + "-");
        rw.unlock();
    };
    auto writer = [](co_rwlock& rw, log_t& lg, std::string name) -> task<void> {
        co_await rw.write_lock();
        lg.push_back(name + "+");
        co_await yield_now();
        lg.push_back(name + "-");
        rw.unlock();
    };
    bool try_read = true;
    auto r1 = corio::spawn(ctx, reader(l, log, "r1", 3));
    auto w1 = corio::spawn(ctx, writer(l, log, "w1"));
    auto probe = corio::spawn(ctx, [](co_rwlock& rw, bool& t) -> task<void> {
        t = rw.try_read_lock();  // a writer is queued: refused though only readers hold it
        if (t) rw.unlock();
        co_return;
    }(l, try_read));
    auto r2 = corio::spawn(ctx, reader(l, log, "r2", 1));
    auto r3 = corio::spawn(ctx, reader(l, log, "r3", 1));
    auto w2 = corio::spawn(ctx, writer(l, log, "w2"));
    auto r4 = corio::spawn(ctx, reader(l, log, "r4", 1));
    poll_until(ctx, [&] {
        return r1.done() && w1.done() && r2.done() && r3.done() && w2.done() && r4.done();
    });
    CHECK_FALSE(try_read);
    CHECK(log == log_t{"r1+", "r1-", "w1+", "w1-", "r2+", "r3+", "r2-", "r3-", "w2+", "w2-", "r4+",
                       "r4-"});
    drain(ctx);
    CHECK(probe.done());
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a sole reader upgrades at once; with a writer queued, it goes after it") {
    co_rwlock l;
    log_t log;
    auto upgrader = [](co_rwlock& rw, log_t& lg) -> task<void> {
        co_await rw.read_lock();
        lg.push_back("u read");
        co_await yield_now();  // the writer queues meanwhile (in the second run)
        co_await rw.upgrade();
        lg.push_back("u write");
        co_await yield_now();
        rw.downgrade();
        lg.push_back("u downgraded");
        rw.unlock();
    };
    SUBCASE("alone") {
        auto u = corio::spawn(ctx, upgrader(l, log));
        poll_until(ctx, [&] { return u.done(); });
        CHECK(log == log_t{"u read", "u write", "u downgraded"});
    }
    SUBCASE("behind a queued writer") {
        auto u = corio::spawn(ctx, upgrader(l, log));
        auto w = corio::spawn(ctx, [](co_rwlock& rw, log_t& lg) -> task<void> {
            co_await rw.write_lock();
            lg.push_back("w");
            rw.unlock();
        }(l, log));
        poll_until(ctx, [&] { return u.done() && w.done(); });
        CHECK(log == log_t{"u read", "w", "u write", "u downgraded"});
    }
    CHECK(corio::run(ctx, [](co_rwlock& rw) -> task<bool> {
        const bool ok = rw.try_write_lock();  // free again
        if (ok) rw.unlock();
        co_return ok;
    }(l)));
}

TEST_CASE_FIXTURE(loop_fixture, "an upgrade waits for the other readers to leave") {
    co_rwlock l;
    log_t log;
    auto u = corio::spawn(ctx, [](co_rwlock& rw, log_t& lg) -> task<void> {
        co_await rw.read_lock();
        co_await yield_now();
        lg.push_back("upgrade");
        co_await rw.upgrade();
        lg.push_back("u write");
        rw.unlock();
    }(l, log));
    auto r = corio::spawn(ctx, [](co_rwlock& rw, log_t& lg) -> task<void> {
        co_await rw.read_lock();
        for (int i = 0; i < 3; ++i) co_await yield_now();
        lg.push_back("r-");
        rw.unlock();
    }(l, log));
    poll_until(ctx, [&] { return u.done() && r.done(); });
    CHECK(log == log_t{"upgrade", "r-", "u write"});
}

TEST_CASE_FIXTURE(loop_fixture, "downgrade admits the queued readers at once and never blocks") {
    co_rwlock l;
    log_t log;
    auto w = corio::spawn(ctx, [](co_rwlock& rw, log_t& lg) -> task<void> {
        co_await rw.write_lock();
        co_await yield_now();  // the readers queue
        rw.downgrade();
        lg.push_back("downgraded");
        co_await yield_now();  // the readers run now, alongside
        lg.push_back("w-");
        rw.unlock();
    }(l, log));
    auto reader = [](co_rwlock& rw, log_t& lg, std::string name) -> task<void> {
        co_await rw.read_lock();
        lg.push_back(name);
        rw.unlock();
    };
    auto r1 = corio::spawn(ctx, reader(l, log, "r1"));
    auto r2 = corio::spawn(ctx, reader(l, log, "r2"));
    poll_until(ctx, [&] { return w.done() && r1.done() && r2.done(); });
    CHECK(log == log_t{"downgraded", "r1", "r2", "w-"});
}

namespace {

struct rw_shared {
    co_rwlock lock;
    std::atomic<int> readers{0};
    std::atomic<int> writers{0};
    std::atomic<bool> violated{false};
    long value = 0;  // written by writers, read by readers: TSan reports any unexcluded access
};

task<void> rw_hammer(rw_shared& sh, int rounds, int id) {
    long seen = 0;
    for (int i = 0; i < rounds; ++i) {
        const int op = (i + id) % 4;
        if (op == 0) {
            co_await sh.lock.write_lock();
            if (sh.writers.fetch_add(1) != 0 || sh.readers.load() != 0) sh.violated = true;
            ++sh.value;
            if (i % 8 == 0) co_await yield_now();
            sh.writers.fetch_sub(1);
            if (i % 16 == 0) {
                sh.lock.downgrade();  // still excluding writers
                if (sh.writers.load() != 0) sh.violated = true;
            }
            sh.lock.unlock();
        } else {
            co_await sh.lock.read_lock();
            sh.readers.fetch_add(1);
            if (sh.writers.load() != 0) sh.violated = true;
            seen += sh.value;
            if (i % 8 == 1) co_await yield_now();
            sh.readers.fetch_sub(1);
            sh.lock.unlock();
        }
    }
    (void)seen;
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a co_rwlock excludes writers from readers across four threads") {
    constexpr int threads = 4;
    constexpr int rounds = 5'000;
    rw_shared sh;
    std::atomic<int> started{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            context c{corio::context_options{.name = "rw"}};
            started.fetch_add(1);
            while (started.load() < threads) std::this_thread::yield();
            corio::run(c, [](rw_shared& s, int id) -> task<void> {
                co_await corio::when_all(rw_hammer(s, rounds, id), rw_hammer(s, rounds, id + 1));
            }(sh, t));
        });
    }
    for (auto& th : pool) th.join();
    CHECK_FALSE(sh.violated.load());
    CHECK(sh.value == long{threads} * 2 * rounds / 4);
}

namespace {

struct queue_shared {
    co_mutex m;
    co_queue nonempty;
    std::vector<int> items;  // under m
    int consumed = 0;        // under m
    long sum = 0;            // under m
    bool done = false;       // under m
};

task<void> queue_producer(queue_shared& sh, int count, int base) {
    for (int i = 0; i < count; ++i) {
        co_await sh.m.lock();
        sh.items.push_back(base + i);
        sh.nonempty.notify_one();
        sh.m.unlock();
        if (i % 16 == 0) co_await yield_now();
    }
}

task<void> queue_consumer(queue_shared& sh, int total) {
    auto guard = co_await sh.m.scoped();
    for (;;) {
        while (sh.items.empty() && !sh.done) co_await sh.nonempty.wait(sh.m);
        if (sh.items.empty()) co_return;
        sh.sum += sh.items.back();
        sh.items.pop_back();
        if (++sh.consumed == total) {
            sh.done = true;
            sh.nonempty.notify_all();
        }
    }
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "co_queue with a co_mutex passes every item between four threads") {
    constexpr int per_producer = 5'000;
    queue_shared sh;
    std::atomic<int> started{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t) {
        pool.emplace_back([&, t] {
            context c{corio::context_options{.name = "queue"}};
            started.fetch_add(1);
            while (started.load() < 4) std::this_thread::yield();
            if (t < 2) {
                corio::run(c, queue_producer(sh, per_producer, t * per_producer));
            } else {
                corio::run(c, queue_consumer(sh, 2 * per_producer));
            }
        });
    }
    for (auto& th : pool) th.join();
    const long n = 2 * per_producer;
    CHECK(sh.consumed == n);
    CHECK(sh.sum == n * (n - 1) / 2);
    CHECK(sh.nonempty.empty());
}

// ---- co_semaphore -----------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture, "a semaphore admits as many as it has permits, then FIFO") {
    co_semaphore sem(2);
    log_t log;
    auto taker = [](co_semaphore& s, log_t& l, std::string name) -> task<void> {
        co_await s.acquire();
        l.push_back(name);
    };
    std::vector<corio::join_handle<void>> all;
    for (const char* name : {"a", "b", "c", "d"})
        all.push_back(corio::spawn(ctx, taker(sem, log, name)));
    drain(ctx);
    CHECK(log == log_t{"a", "b"});
    CHECK(sem.available() == 0);
    sem.release();  // to "c", not to a newcomer
    CHECK(sem.available() == 0);
    CHECK(corio::run(ctx, [](co_semaphore& s) -> task<bool> { co_return s.try_acquire(); }(sem)) ==
          false);
    drain(ctx);
    CHECK(log == log_t{"a", "b", "c"});
    sem.release(3);  // one to "d", two left over
    drain(ctx);
    CHECK(log == log_t{"a", "b", "c", "d"});
    CHECK(sem.available() == 2);
    CHECK(corio::run(ctx, [](co_semaphore& s) -> task<bool> { co_return s.try_acquire(); }(sem)));
    CHECK(sem.available() == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a semaphore acquire cancelled from another thread leaves no waiter behind") {
    co_semaphore sem(0);
    corio::test::remote_stop stop{ctx};
    const result<void> r = corio::run(
        ctx,
        [](co_semaphore& s, std::stop_token st, std::atomic<bool>& armed) -> task<result<void>> {
            armed.store(true);
            co_return co_await s.acquire(st);
        }(sem, stop.token(), stop.armed));
    stop.join();
    CHECK(is_cancelled(r));
    sem.release();  // nobody waits any more: the permit stays
    CHECK(sem.available() == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a permit released after the stop request skips the cancelled waiter") {
    co_semaphore sem(0);
    std::stop_source stop;
    result<void> outcome;
    auto h =
        corio::spawn(ctx, [](co_semaphore& s, std::stop_token st, result<void>& out) -> task<void> {
            out = co_await s.acquire(st);
        }(sem, stop.get_token(), outcome));
    drain(ctx);
    stop.request_stop();  // its cancellation has not run yet: the waiter is still listed
    sem.release();
    CHECK(sem.available() == 1);
    poll_until(ctx, [&] { return h.done(); });
    CHECK(is_cancelled(outcome));
    CHECK(sem.available() == 1);
}

TEST_CASE_FIXTURE(loop_fixture, "a permit granted before the stop request is kept") {
    co_semaphore sem(0);
    std::stop_source stop;
    result<void> outcome = result<void>::from_errno(EINVAL);
    auto h =
        corio::spawn(ctx, [](co_semaphore& s, std::stop_token st, result<void>& out) -> task<void> {
            out = co_await s.acquire(st);
        }(sem, stop.get_token(), outcome));
    drain(ctx);
    sem.release();        // granted: the waiter is queued to run
    stop.request_stop();  // too late
    drain(ctx);
    CHECK(h.done());
    CHECK(outcome.ok());
    CHECK(sem.available() == 0);
}

// ---- co_event ---------------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture,
                  "an event set before the wait does not suspend; set wakes every waiter") {
    co_event ev;
    int woken = 0;
    auto waiter = [](co_event& e, int& w) -> task<void> {
        co_await e.wait();
        ++w;
    };
    auto a = corio::spawn(ctx, waiter(ev, woken));
    auto b = corio::spawn(ctx, waiter(ev, woken));
    drain(ctx);
    CHECK(woken == 0);
    CHECK_FALSE(ev.is_set());
    ev.set();
    drain(ctx);
    CHECK(woken == 2);
    // Still set: a later wait returns without suspending (no loop iteration needed).
    const bool ran_inline = corio::run(ctx, [](co_event& e, context& c) -> task<bool> {
        const auto before = c.stats().iterations;
        co_await e.wait();
        co_return c.stats().iterations == before;
    }(ev, ctx));
    CHECK(ran_inline);
    ev.reset();
    auto c = corio::spawn(ctx, waiter(ev, woken));
    drain(ctx);
    CHECK(woken == 2);
    std::thread([&] { ev.set(); }).join();  // any thread may set it
    poll_until(ctx, [&] { return c.done(); });
    CHECK(woken == 3);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "an event wait is cancelled and a later set does not wake it again") {
    co_event ev;
    std::stop_source stop;
    result<void> outcome;
    int resumed = 0;
    auto h = corio::spawn(
        ctx, [](co_event& e, std::stop_token st, result<void>& out, int& n) -> task<void> {
            out = co_await e.wait(st);
            ++n;
        }(ev, stop.get_token(), outcome, resumed));
    drain(ctx);
    stop.request_stop();
    poll_until(ctx, [&] { return h.done(); });
    CHECK(is_cancelled(outcome));
    ev.set();  // nobody left to wake: a stale node would be resumed twice (abort) or touched freed
    drain(ctx);
    CHECK(resumed == 1);
}

// ---- channel ----------------------------------------------------------------------------------

TEST_CASE_FIXTURE(loop_fixture, "a channel delivers values in order and blocks senders when full") {
    channel<int> ch(2);
    std::vector<int> got;
    int sent = 0;
    auto producer = corio::spawn(ctx, [](channel<int>& c, int& s) -> task<void> {
        for (int i = 1; i <= 5; ++i) {
            CHECK((co_await c.send(i)).ok());
            s = i;
        }
    }(ch, sent));
    drain(ctx);
    CHECK(sent == 2);  // the third send waits for room
    CHECK(ch.size() == 2);
    auto consumer = corio::spawn(ctx, [](channel<int>& c, std::vector<int>& g) -> task<void> {
        for (int i = 0; i < 5; ++i) {
            result<int> v = co_await c.receive();
            REQUIRE(v.ok());
            g.push_back(*v);
        }
    }(ch, got));
    poll_until(ctx, [&] { return producer.done() && consumer.done(); });
    CHECK(got == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(ch.size() == 0);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a closed channel drains its buffer, then reports EPIPE to everyone") {
    channel<std::string> ch(4);
    result<void> late_send;
    std::vector<result<std::string>> received;
    corio::run(ctx, [](channel<std::string>& c) -> task<void> {
        (void)co_await c.send("one");
        (void)co_await c.send("two");
    }(ch));
    ch.close();
    ch.close();  // idempotent
    CHECK(ch.is_closed());
    corio::run(ctx,
               [](channel<std::string>& c, std::vector<result<std::string>>& r,
                  result<void>& s) -> task<void> {
                   s = co_await c.send("three");
                   for (int i = 0; i < 3; ++i) r.push_back(co_await c.receive());
               }(ch, received, late_send));
    CHECK(late_send.error() == std::errc::broken_pipe);
    REQUIRE(received.size() == 3);
    CHECK(*received[0] == "one");
    CHECK(*received[1] == "two");
    CHECK(received[2].error() == std::errc::broken_pipe);
}

TEST_CASE_FIXTURE(loop_fixture, "close wakes waiting receivers and senders with EPIPE") {
    channel<int> empty(1);
    channel<int> full(1);
    result<int> receiver_outcome = 0;
    result<void> sender_outcome;
    auto r = corio::spawn(ctx, [](channel<int>& c, result<int>& out) -> task<void> {
        out = co_await c.receive();
    }(empty, receiver_outcome));
    auto s = corio::spawn(ctx, [](channel<int>& c, result<void>& out) -> task<void> {
        (void)co_await c.send(1);
        out = co_await c.send(2);  // waits: full
    }(full, sender_outcome));
    drain(ctx);
    CHECK_FALSE(r.done());
    CHECK_FALSE(s.done());
    std::thread([&] {
        empty.close();
        full.close();
    }).join();
    poll_until(ctx, [&] { return r.done() && s.done(); });
    CHECK(receiver_outcome.error() == std::errc::broken_pipe);
    CHECK(sender_outcome.error() == std::errc::broken_pipe);
    CHECK(full.size() == 1);  // the value sent before close is still there
}

TEST_CASE_FIXTURE(loop_fixture,
                  "a channel of capacity 0 hands each value from sender to receiver") {
    channel<int> ch(0);
    log_t log;
    auto s = corio::spawn(ctx, [](channel<int>& c, log_t& l) -> task<void> {
        l.push_back("send");
        (void)co_await c.send(7);
        l.push_back("sent");
    }(ch, log));
    drain(ctx);
    CHECK(log == log_t{"send"});  // nobody received yet
    const result<int> v = corio::run(
        ctx, [](channel<int>& c) -> task<result<int>> { co_return co_await c.receive(); }(ch));
    drain(ctx);
    CHECK(*v == 7);
    CHECK(log == log_t{"send", "sent"});
}

TEST_CASE_FIXTURE(loop_fixture, "cancelled channel waits return ECANCELED and take nothing") {
    channel<int> ch(1);
    std::stop_source stop_recv;
    std::stop_source stop_send;
    result<int> received = 0;
    result<void> sent;
    auto r =
        corio::spawn(ctx, [](channel<int>& c, std::stop_token st, result<int>& out) -> task<void> {
            out = co_await c.receive(st);
        }(ch, stop_recv.get_token(), received));
    drain(ctx);
    stop_recv.request_stop();
    poll_until(ctx, [&] { return r.done(); });
    CHECK(received.error() == std::errc::operation_canceled);
    auto s =
        corio::spawn(ctx, [](channel<int>& c, std::stop_token st, result<void>& out) -> task<void> {
            (void)co_await c.send(1);  // fills it
            out = co_await c.send(2, st);
        }(ch, stop_send.get_token(), sent));
    drain(ctx);
    stop_send.request_stop();
    poll_until(ctx, [&] { return s.done(); });
    CHECK(sent.error() == std::errc::operation_canceled);
    CHECK(ch.size() == 1);  // the cancelled value was not sent
    const result<int> v = corio::run(
        ctx, [](channel<int>& c) -> task<result<int>> { co_return co_await c.receive(); }(ch));
    CHECK(*v == 1);
}

TEST_CASE_FIXTURE(loop_fixture,
                  "producers and consumers on four threads pass every value through a channel") {
    constexpr int per_producer = 5'000;
    channel<int> ch(4);
    std::atomic<long> sum{0};
    std::atomic<int> received{0};
    std::atomic<int> producers_left{2};
    auto produce = [](channel<int>& c, int base, std::atomic<int>& left) -> task<void> {
        for (int i = 0; i < per_producer; ++i) REQUIRE((co_await c.send(base + i)).ok());
        if (left.fetch_sub(1) == 1) c.close();
    };
    auto consume = [](channel<int>& c, std::atomic<long>& s, std::atomic<int>& n) -> task<void> {
        int last[2] = {-1, -1};
        for (;;) {
            result<int> v = co_await c.receive();
            if (!v) {
                CHECK(v.error() == std::errc::broken_pipe);
                co_return;
            }
            const int who = *v >= 1'000'000;
            CHECK(*v > last[who]);  // each producer's values arrive in order
            last[who] = *v;
            s += *v;
            ++n;
        }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t) {
        pool.emplace_back([&, t] {
            context c{corio::context_options{.name = "channel"}};
            if (t < 2) {
                corio::run(c, produce(ch, t * 1'000'000, producers_left));
            } else {
                corio::run(c, consume(ch, sum, received));
            }
        });
    }
    for (auto& th : pool) th.join();
    const long n = per_producer;
    CHECK(received.load() == 2 * per_producer);
    CHECK(sum.load() == n * (n - 1) + 1'000'000 * n);
}

// ---- misuse -----------------------------------------------------------------------------------

TEST_CASE("co_mutex misuse aborts with a message") {
    SUBCASE("unlock by a coroutine that does not hold it") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            static co_mutex m;
            static co_event never;
            auto holder = corio::spawn(ctx, [](co_mutex& mu, co_event& e) -> task<void> {
                co_await mu.lock();
                co_await e.wait();  // stays alive, holding it
            }(m, never));
            corio::run(ctx, [](co_mutex& mu) -> task<void> {
                mu.unlock();
                co_return;
            }(m));
        });
        CHECK(msg.find("does not hold the mutex") != std::string::npos);
    }
    SUBCASE("destroying a locked mutex") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            auto* m = new co_mutex;
            corio::run(ctx, [](co_mutex& mu) -> task<void> { co_await mu.lock(); }(*m));
            delete m;
        });
        CHECK(msg.find("co_mutex destroyed while locked") != std::string::npos);
    }
    SUBCASE("locking it again from the holder") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            static co_mutex m;
            corio::run(ctx, [](co_mutex& mu) -> task<void> {
                co_await mu.lock();
                co_await mu.lock();
            }(m));
        });
        CHECK(msg.find("already holds it") != std::string::npos);
    }
    SUBCASE("waiting on a co_queue without holding the mutex") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            static co_mutex m;
            static co_queue q;
            corio::run(
                ctx, [](co_mutex& mu, co_queue& qu) -> task<void> { co_await qu.wait(mu); }(m, q));
        });
        CHECK(msg.find("does not hold the mutex") != std::string::npos);
    }
}

TEST_CASE("co_rwlock, semaphore and channel misuse aborts with a message") {
    SUBCASE("unlocking a rwlock that is not held") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            static co_rwlock l;
            corio::run(ctx, [](co_rwlock& rw) -> task<void> {
                rw.unlock();
                co_return;
            }(l));
        });
        CHECK(msg.find("not held") != std::string::npos);
    }
    SUBCASE("upgrading without a read lock") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            static co_rwlock l;
            corio::run(ctx, [](co_rwlock& rw) -> task<void> { co_await rw.upgrade(); }(l));
        });
        CHECK(msg.find("without holding a read lock") != std::string::npos);
    }
    SUBCASE("a negative semaphore count") {
        const std::string msg = corio::test::abort_message_of([] { co_semaphore s(-1); });
        CHECK(msg.find("negative") != std::string::npos);
    }
    SUBCASE("destroying a channel with a receiver waiting") {
        const std::string msg = corio::test::abort_message_of([] {
            static context ctx;
            auto* ch = new channel<int>(1);
            auto h = corio::spawn(
                ctx, [](channel<int>& c) -> task<void> { (void)co_await c.receive(); }(*ch));
            while (ctx.poll(false)) {
            }
            delete ch;
        });
        CHECK(msg.find("channel destroyed while coroutines wait") != std::string::npos);
    }
    SUBCASE("waiting outside a coroutine") {
        const std::string msg = corio::test::abort_message_of([] {
            static co_event ev;
            auto w = ev.wait();
            (void)w.await_ready();
            (void)w.await_suspend(std::noop_coroutine());
        });
        CHECK(msg.find("outside a coroutine") != std::string::npos);
    }
}
