#include <corio/error.hpp>
#include <corio/event_notifier.hpp>

#include <sys/eventfd.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <utility>

namespace corio {

event_notifier::event_notifier() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) throw error(errno, "eventfd");
}

event_notifier::event_notifier(event_notifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

event_notifier& event_notifier::operator=(event_notifier&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

event_notifier::~event_notifier() {
    if (fd_ >= 0) close(fd_);
}

void event_notifier::set() const noexcept {
    const std::uint64_t one = 1;
    while (write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

bool event_notifier::test_and_clear() const noexcept {
    std::uint64_t count = 0;
    ssize_t n;
    while ((n = read(fd_, &count, sizeof count)) < 0 && errno == EINTR) {
    }
    return n == sizeof count && count != 0;
}

}  // namespace corio
