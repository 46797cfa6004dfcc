// Backend selection under a real refusal: a child process installs a seccomp filter that makes
// io_uring_setup fail with EPERM (as container runtimes' default profiles do), then creates
// contexts. Runs once, with automatic selection. A build without io_uring has no io_uring to
// fall back from: there, the tests at the end check that it starts at epoll and refuses a forced
// io_uring.
#include "support/loop_fixture.hpp"

#include <corio/config.hpp>
#include <corio/error.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <cstddef>
#include <string>

#if CORIO_HAS_IO_URING

namespace {

bool refuse_io_uring_setup() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),  // other ABIs: not filtered
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Runs `body` in a child with io_uring_setup refused; returns its exit status and stderr.
std::pair<int, std::string> in_refusing_child(int (*body)()) {
    int err[2];
    REQUIRE(pipe2(err, O_CLOEXEC) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(err[1], 2);
        if (!refuse_io_uring_setup()) _exit(90);
        _exit(body());
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

}  // namespace

TEST_CASE(
    "io_uring refused by seccomp: automatic selection falls back to epoll, logs why, and works") {
    unsetenv("CORIO_BACKEND");
    const auto [status, log] = in_refusing_child([] {
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
    });
    CHECK(status == 0);
    CHECK(log.find("using the epoll backend") != std::string::npos);
    CHECK(log.find("io_uring_setup") != std::string::npos);
    CHECK(log.find("Operation not permitted") != std::string::npos);
    // Logged once for the process, not once per context.
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
