#include "support/loop_fixture.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cerrno>
#include <csignal>
#include <stdexcept>

namespace corio::test {

test_pipe::test_pipe() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
    rd = fds[0];
    wr = fds[1];
}

test_socket_pair::test_socket_pair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        throw std::runtime_error("socketpair");
    a = sv[0];
    b = sv[1];
}

test_socket_pair::~test_socket_pair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
}

void test_pipe::put(char c) const {
    if (write(wr, &c, 1) != 1) throw std::runtime_error("pipe write");
}

int test_pipe::drain() const {
    char buf[256];
    int total = 0;
    for (;;) {
        ssize_t n = read(rd, buf, sizeof buf);
        if (n <= 0) return total;
        total += static_cast<int>(n);
    }
}

void test_pipe::close_read() {
    if (rd >= 0) close(std::exchange(rd, -1));
}

void test_pipe::close_write() {
    if (wr >= 0) close(std::exchange(wr, -1));
}

remote_action::remote_action(context& ctx, std::function<void()> action)
    : action_(std::move(action)), thread_([this, &ctx] {
          while (!armed.load()) std::this_thread::yield();
          ctx.post([this] { pending_.store(true); }, "remote_action");
          while (!pending_.load()) std::this_thread::yield();
          action_();
      }) {}

std::pair<int, std::string> run_in_child(void (*fn)()) {
    int err[2];
    if (pipe2(err, O_CLOEXEC) < 0) throw std::runtime_error("pipe2");
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
        // The test framework catches SIGABRT to report crashes; the child must really die.
        std::signal(SIGABRT, SIG_DFL);
        dup2(err[1], 2);
        const int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, 1);
        fn();
        _exit(0);
    }
    close(err[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = read(err[0], buf, sizeof buf)) > 0;) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::string abort_message_of(void (*fn)()) {
    auto [status, out] = run_in_child(fn);
    if (status == 128 + SIGABRT) return out;
    return "child did not abort (status " + std::to_string(status) + "): " + out;
}

std::stop_source new_stop_source() {
    return std::stop_source();
}

}  // namespace corio::test
