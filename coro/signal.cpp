// signal_set (see signal.hpp).
#include <corio/signal.hpp>

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/schedule.hpp>

#include <fmt/format.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <cerrno>

namespace corio {

signal_set::signal_set(std::initializer_list<int> signals) {
    if (signals.size() == 0) throw error(EINVAL, "signal_set: no signals");
    sigset_t mask;
    sigemptyset(&mask);
    for (const int signo : signals) {
        if (signo == SIGKILL || signo == SIGSTOP || sigaddset(&mask, signo) != 0) {
            throw error(EINVAL, fmt::format("signal_set: {} cannot be caught", signo));
        }
    }
    // Opened before blocking, so a failure leaves the thread's mask as it was.
    fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0) throw error(errno, "signal_set: signalfd");
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
}

signal_set::~signal_set() {
    close(fd_);
}

task<result<int>> signal_set::wait(std::stop_token stop) {
    for (;;) {
        // Checked before reading, so a cancelled wait never consumes a signal.
        if (stop.stop_requested() || current_stop_token().stop_requested())
            co_return result<int>::from_errno(ECANCELED);
        signalfd_siginfo info;
        const ssize_t n = read(fd_, &info, sizeof info);
        if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
        if (n < 0 && errno != EAGAIN && errno != EINTR) co_return result<int>::from_errno(errno);
        if (result<void> ready = co_await wait_readable(fd_, stop); !ready) {
            co_return result<int>::from_errno(ready.error().value());
        }
    }
}

}  // namespace corio
