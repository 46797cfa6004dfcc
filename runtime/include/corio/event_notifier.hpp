// corio::event_notifier — QEMU's EventNotifier: an eventfd that one side sets and the other
// waits on through the context (`context::set_event_notifier`).
#pragma once

namespace corio {

/// An eventfd opened with EFD_CLOEXEC | EFD_NONBLOCK. Move-only; closes the fd on destruction
/// (remove it from any context first). Construction throws corio::error if eventfd fails.
class event_notifier {
public:
    event_notifier();
    event_notifier(event_notifier&& other) noexcept;
    event_notifier& operator=(event_notifier&& other) noexcept;
    event_notifier(const event_notifier&) = delete;
    event_notifier& operator=(const event_notifier&) = delete;
    ~event_notifier();

    /// Make the fd readable. Thread-safe and async-signal-safe (one write(2)).
    void set() const noexcept;
    /// Consume the pending events; returns whether there were any. Never blocks.
    bool test_and_clear() const noexcept;
    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

}  // namespace corio
