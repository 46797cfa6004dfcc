// showcase — the event loop at work: bottom halves (from the loop and from another thread),
// timers on the monotonic clock, and an fd handler on a pipe fed by a timer.
//
// Run it with examples/quickstart.sh; --backend (or CORIO_BACKEND) picks a backend.
#include "common/flags.hpp"

#include <corio/context.hpp>
#include <corio/error.hpp>
#include <corio/fmt.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

namespace {

struct pipe_reader {
    int fd;
    int messages = 0;
};

void on_readable(void* opaque) {
    auto* reader = static_cast<pipe_reader*>(opaque);
    char buf[64];
    ssize_t n;
    while ((n = read(reader->fd, buf, sizeof buf)) > 0) {
        ++reader->messages;
        fmt::print("  fd handler: read {:?} from the pipe\n", std::string_view(buf, n));
    }
}

constexpr std::string_view usage =
    "usage: showcase [--backend B]\n"
    "  --backend B  auto (CORIO_BACKEND, else the best available; default), io_uring, epoll, "
    "poll\n";

/// Bottom halves, timers and an fd handler on `ctx`, until each has done its part.
int show(corio::context& ctx) {
    fmt::print("corio showcase: context '{}' on the {} backend\n", ctx.name(),
               corio::to_string(ctx.backend()));

    // 1. A bottom half that reschedules itself three times: each run is one loop iteration.
    int countdown = 3;
    corio::bottom_half tick;
    tick = ctx.make_bh(
        [&] {
            fmt::print("  bottom half: countdown {}\n", countdown);
            if (--countdown > 0) tick.schedule();
        },
        "countdown");
    tick.schedule();

    // 2. A pipe watched by an fd handler, written to by timers 1, 2 and 3 ms from now.
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return 1;
    pipe_reader reader{fds[0]};
    ctx.add_fd_handler(fds[0], {.read = on_readable}, &reader);
    int writes = 0;
    corio::timer writer(ctx, [&] {
        const std::string msg = fmt::format("msg{}", ++writes);
        if (write(fds[1], msg.data(), msg.size()) < 0) return;
        fmt::print("  timer: wrote {:?} at +{}ms\n", msg, writes);
        if (writes < 3) writer.arm_after(1ms);
    });
    writer.arm_after(1ms);

    // 3. A bottom half scheduled from another thread: wait-free, wakes the loop if it sleeps.
    bool remote_ran = false;
    corio::bottom_half from_thread = ctx.make_bh(
        [&] {
            remote_ran = true;
            fmt::print("  bottom half: scheduled by another thread, ran on the loop's thread\n");
        },
        "from-thread");
    std::thread other([&] {
        std::this_thread::sleep_for(5ms);
        from_thread.schedule();
    });

    ctx.run_until([&] { return countdown == 0 && reader.messages == 3 && remote_ran; });
    other.join();

    ctx.remove_fd_handler(fds[0]);
    close(fds[0]);
    close(fds[1]);
    fmt::print("done: {}\n", ctx.stats());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    corio::backend_kind backend = corio::backend_kind::automatic;
    examples::flags flags("showcase", usage);
    if (std::optional<int> status = flags.backend(backend).parse(argc, argv)) return *status;
    try {
        corio::context ctx{{.backend = backend, .name = "showcase"}};
        return show(ctx);
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "showcase: {}\n", e.what());
        return 1;
    }
}
