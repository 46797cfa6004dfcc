// signal_set: signals through a signalfd, awaited by coroutines on every backend.
#include "support/loop_fixture.hpp"

#include <corio/error.hpp>
#include <corio/signal.hpp>
#include <corio/spawn.hpp>

#include <doctest/doctest.h>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

using corio::task;
using corio::test::loop_fixture;

namespace {

/// Restores the thread's signal mask at the end of a test, after checking that the test
/// consumed every signal it sent (an unblocked pending SIGUSR1 would kill the suite).
struct mask_guard {
    sigset_t saved;
    mask_guard() { pthread_sigmask(SIG_SETMASK, nullptr, &saved); }
    ~mask_guard() {
        sigset_t pending;
        sigpending(&pending);
        CHECK_FALSE(sigismember(&pending, SIGUSR1));
        CHECK_FALSE(sigismember(&pending, SIGUSR2));
        pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    }
};

task<int> next(corio::signal_set& signals, std::stop_token stop = {}) {
    corio::result<int> signo = co_await signals.wait(stop);
    co_return signo ? *signo : -signo.error().value();
}

/// Waits on `signals` after setting `armed` (see corio::test::remote_action).
task<int> next_armed(corio::signal_set& signals, std::atomic<bool>& armed,
                     std::stop_token stop = {}) {
    armed.store(true);
    co_return co_await next(signals, std::move(stop));
}

}  // namespace

TEST_CASE_FIXTURE(loop_fixture, "a signal sent before the wait is returned at once") {
    mask_guard guard;
    corio::signal_set signals{SIGUSR1};
    pthread_kill(pthread_self(), SIGUSR1);
    CHECK(corio::run(ctx, next(signals)) == SIGUSR1);
}

TEST_CASE_FIXTURE(loop_fixture, "a signal from another thread wakes a waiting loop") {
    mask_guard guard;
    corio::signal_set signals{SIGUSR1, SIGUSR2};
    corio::test::remote_action sender(ctx,
                                      [target = pthread_self()] { pthread_kill(target, SIGUSR2); });
    CHECK(corio::run(ctx, next_armed(signals, sender.armed)) == SIGUSR2);
    sender.join();
}

TEST_CASE_FIXTURE(loop_fixture, "each wait returns one signal; unlisted ones are not reported") {
    mask_guard guard;
    corio::signal_set only_usr1{SIGUSR1};
    corio::signal_set only_usr2{SIGUSR2};
    pthread_kill(pthread_self(), SIGUSR2);
    pthread_kill(pthread_self(), SIGUSR1);
    // only_usr1 skips the pending SIGUSR2 and leaves it for the set that lists it.
    CHECK(corio::run(ctx, next(only_usr1)) == SIGUSR1);
    CHECK(corio::run(ctx, next(only_usr2)) == SIGUSR2);
}

TEST_CASE_FIXTURE(loop_fixture, "a cancelled wait ends with ECANCELED and consumes nothing") {
    mask_guard guard;
    corio::signal_set signals{SIGUSR1};
    SUBCASE("stopped while waiting (its own token)") {
        corio::test::remote_stop stopper{ctx};
        CHECK(corio::run(ctx, next_armed(signals, stopper.armed, stopper.token())) == -ECANCELED);
    }
    SUBCASE("stopped before it starts, with a signal pending (the task's token)") {
        std::stop_source stop = corio::test::new_stop_source();
        stop.request_stop();
        pthread_kill(pthread_self(), SIGUSR1);
        auto handle = corio::spawn(ctx, next(signals), "waiter", stop.get_token());
        ctx.run_until([&] { return handle.done(); });
        CHECK(handle.get() == -ECANCELED);
    }
    // Whatever the cancelled wait left pending is still there for the next one.
    pthread_kill(pthread_self(), SIGUSR1);
    CHECK(corio::run(ctx, next(signals)) == SIGUSR1);
}

TEST_CASE("SIGTERM to the process ends a wait, as in a server's shutdown") {
    // In a child: its only thread (and the helper it starts) block SIGTERM, so the
    // process-directed signal can only be read from the signalfd, never kill it.
    auto [status, err] = corio::test::run_in_child([] {
        corio::signal_set signals{SIGINT, SIGTERM};
        corio::context ctx;
        corio::test::remote_action killer(ctx, [] { kill(getpid(), SIGTERM); });
        const int got = corio::run(ctx, next_armed(signals, killer.armed));
        killer.join();
        std::_Exit(got == SIGTERM ? 0 : 1);
    });
    CHECK(status == 0);
    CHECK(err == "");
}

TEST_CASE("signals that cannot be awaited are EINVAL, and the mask is left alone") {
    mask_guard guard;
    auto code_of = [](std::initializer_list<int> signals) {
        try {
            corio::signal_set set(signals);
        } catch (const corio::error& e) {
            return e.code().value();
        }
        return 0;
    };
    CHECK(code_of({}) == EINVAL);
    CHECK(code_of({SIGKILL}) == EINVAL);
    CHECK(code_of({SIGUSR1, SIGSTOP}) == EINVAL);
    CHECK(code_of({0}) == EINVAL);
    CHECK(code_of({1000}) == EINVAL);
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, nullptr, &now);
    CHECK_FALSE(sigismember(&now, SIGUSR1));
}
