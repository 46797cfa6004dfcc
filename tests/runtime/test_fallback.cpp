// Backend selection under a real refusal: a child process installs a seccomp filter that makes
// io_uring_setup fail with EPERM (as container runtimes' default profiles do), then creates
// contexts. Runs once, with automatic selection, whether or not the suite itself already runs
// under such a filter (tests/run.sh --no-io-uring). A build without io_uring has no io_uring to
// fall back from: there, the tests at the end check that it starts at epoll and refuses a forced
// io_uring.
#include "support/loop_fixture.hpp"
#include "support/seccomp.hpp"

#include <corio/config.hpp>
#include <corio/error.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstdlib>
#include <string>

#if CORIO_HAS_IO_URING

namespace {

// Set in the environment of a re-executed test program: run the child's side of the test.
constexpr const char* child_variable = "CORIO_TEST_FALLBACK_CHILD";

// Runs `body` in a child with io_uring_setup refused; returns its exit status and stderr.
// Given `test_case` instead, the child re-executes this program to run only that test case,
// whose body then sees child_variable and runs the child's side: the fallback is logged once per
// process, and a forked child of a process that has logged it (one under a filter) logs nothing.
std::pair<int, std::string> in_refusing_child(int (*body)(), const char* test_case = nullptr) {
    int err[2];
    REQUIRE(pipe2(err, O_CLOEXEC) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        if (!corio::test::refuse_io_uring_setup()) _exit(90);
        if (!test_case) _exit(body());
        const std::string filter = std::string("--test-case=") + test_case;
        setenv(child_variable, "1", 1);
        execl("/proc/self/exe", "test_fallback", filter.c_str(), static_cast<char*>(nullptr));
        _exit(91);
    }
    close(err[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;)
        out.append(buf, static_cast<std::size_t>(n));
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

int falls_back_to_epoll() {
    corio::context first;
    if (first.backend() != corio::backend_kind::epoll) return 1;
    int runs = 0;
    first.post([&] { ++runs; });
    corio::test::test_pipe p;
    first.add_fd_handler(p.rd, {.read = [](void* o) { ++*static_cast<int*>(o); }}, &runs);
    p.put();
    while (runs < 2) first.poll(true);
    first.remove_fd_handler(p.rd);
    corio::context second;  // falls back too, without logging again
    return second.backend() == corio::backend_kind::epoll ? 0 : 2;
}

}  // namespace

TEST_CASE(
    "io_uring refused by seccomp: automatic selection falls back to epoll, logs why, and works") {
    if (std::getenv(child_variable)) _exit(falls_back_to_epoll());  // the re-executed child
    unsetenv("CORIO_BACKEND");
    // The name up to its first comma (doctest splits filters at commas).
    const auto [status, log] =
        in_refusing_child(nullptr, "io_uring refused by seccomp: automatic selection falls back*");
    CHECK(status == 0);
    CHECK(log.find("using the epoll backend") != std::string::npos);
    CHECK(log.find("io_uring_setup") != std::string::npos);
    CHECK(log.find("Operation not permitted") != std::string::npos);
    // Logged once for the process, not once per context (the test program's own start-up
    // check creates a context too, before this test's two).
    CHECK(log.find("using the epoll backend") == log.rfind("using the epoll backend"));
}

TEST_CASE("io_uring forced but refused by seccomp is an error carrying EPERM") {
    const auto [status, log] = in_refusing_child([] {
        try {
            corio::context ctx{corio::context_options{corio::backend_kind::io_uring, "forced"}};
        } catch (const corio::error& e) {
            return e.code().value() == EPERM ? 0 : 3;
        }
        return 4;
    });
    CHECK(status == 0);
    CHECK(log.empty());
}

#else

TEST_CASE("a build without io_uring starts at epoll, with no fallback to log") {
    unsetenv("CORIO_BACKEND");
    const auto [status, log] = corio::test::run_in_child([] {
        corio::context ctx;
        _exit(ctx.backend() == corio::backend_kind::epoll && !ctx.has_io_uring() ? 0 : 1);
    });
    CHECK(status == 0);
    CHECK(log.empty());
}

TEST_CASE("a build without io_uring refuses a forced io_uring with ENOSYS") {
    auto forced = [](corio::context_options options) {
        try {
            corio::context ctx{std::move(options)};
        } catch (const corio::error& e) {
            CHECK(e.code().value() == ENOSYS);
            CHECK(std::string(e.what()).find("no io_uring") != std::string::npos);
            return;
        }
        FAIL("a context on io_uring was created");
    };
    forced(corio::context_options{corio::backend_kind::io_uring, "forced"});
    setenv("CORIO_BACKEND", "io_uring", 1);
    forced(corio::context_options{});
    unsetenv("CORIO_BACKEND");
}

#endif
