// cat — concatenates files to standard output with corio's file awaitables.
//
// As coreutils cat: `-` (or no argument) is standard input; a file that cannot be read is
// reported, the others are still copied, and the exit status is 1. A regular file is read at
// explicit offsets, the next chunk while one is written (io_uring: a write and the next read leave
// in one io_uring_enter; epoll and poll: file reads run on the context's thread pool); anything
// else is read in order. Standard input and output keep the shell's flags: on epoll and poll, a
// read from a blocking pipe blocks the idle loop thread.
#include "common/flags.hpp"

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/spawn.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

/// Standard output, and the first error writing to it (after which nothing more is written).
struct output {
    std::error_code error;

    corio::task<bool> put(std::span<const std::byte> data) {
        corio::result<std::size_t> n = co_await corio::write_all(STDOUT_FILENO, data);
        if (!n) error = n.error();
        co_return n.ok();
    }
};

/// Fills `buf` from `offset` on; a short count means the end of the file.
corio::task<corio::result<std::size_t>> read_at(int fd, std::span<std::byte> buf,
                                                std::int64_t offset) {
    std::size_t got = 0;
    while (got < buf.size()) {
        corio::result<std::size_t> n =
            co_await corio::read(fd, buf.subspan(got), offset + static_cast<std::int64_t>(got));
        if (!n) co_return n;
        if (*n == 0) break;
        got += *n;
    }
    co_return got;
}

/// A regular file, in two chunks of `buffers`: while one is written, the next is read by a task
/// spawned on the same context. The read error, if any.
corio::task<std::error_code> copy_file(int fd, std::span<std::byte> buffers, output& out) {
    corio::context& ctx = *corio::context::current();
    const std::size_t chunk = buffers.size() / 2;
    std::span<std::byte> current = buffers.first(chunk), next = buffers.last(chunk);
    corio::join_handle<corio::result<std::size_t>> reading =
        corio::spawn(ctx, read_at(fd, current, 0), "read");
    for (std::int64_t offset = 0;; std::swap(current, next)) {
        corio::result<std::size_t> n = co_await reading;
        if (!n) co_return n.error();
        offset += static_cast<std::int64_t>(*n);
        const bool more = *n == chunk;  // a short read is the end of the file
        if (more) reading = corio::spawn(ctx, read_at(fd, next, offset), "read");
        // (The co_await is a statement of its own: as an operand of && in a condition, GCC 12
        // leaked the awaited task's frame once per file, AddressSanitizer showed.)
        const bool written = co_await out.put(current.first(*n));
        if (more && !written) (void)co_await reading;  // it reads into `next`: not to be freed yet
        if (!more || !written) co_return std::error_code();
    }
}

/// Anything else: read at the file position until it says end of file. The read error, if any.
corio::task<std::error_code> copy_stream(int fd, std::span<std::byte> buf, output& out) {
    for (bool written = true; written;) {
        corio::result<std::size_t> n = co_await corio::read(fd, buf);
        if (!n || *n == 0) co_return n.error();
        written = co_await out.put(buf.first(*n));
    }
    co_return std::error_code();
}

corio::task<int> cat(std::vector<std::string_view> names) {
    // Measured with tests/bench/bench_cat.cpp: with io_uring, 2 × 128 KiB cost the CPU time of
    // coreutils cat (larger buffers leave the CPU cache between read and write); without, every
    // read is a thread-pool job, and 256 KiB chunks halve those hand-offs.
    const std::size_t chunk = corio::context::current()->has_io_uring() ? 128 << 10 : 256 << 10;
    const auto buffers = std::make_unique_for_overwrite<std::byte[]>(2 * chunk);
    const std::span<std::byte> all(buffers.get(), 2 * chunk);
    output out;
    int status = 0;
    for (std::string_view name : names) {
        const bool from_stdin = name == "-";
        corio::result<int> fd = STDIN_FILENO;
        // name comes from argv: NUL-terminated, alive until main returns.
        if (!from_stdin) fd = co_await corio::open(name.data(), O_RDONLY);
        struct stat st {};
        const bool regular = fd && !from_stdin && ::fstat(*fd, &st) == 0 && S_ISREG(st.st_mode);
        std::error_code error = fd.error();  // the open's, if any
        if (regular) error = co_await copy_file(*fd, all, out);
        if (fd && !regular) error = co_await copy_stream(*fd, all.first(chunk), out);
        if (fd && !from_stdin) (void)co_await corio::close(*fd);
        if (error) {
            fmt::print(stderr, "cat: {}: {}\n", name, error.message());
            status = 1;
        }
        if (out.error == std::errc::broken_pipe) co_return status;  // the reader has gone
        if (out.error) {
            fmt::print(stderr, "cat: write error: {}\n", out.error.message());
            co_return 1;
        }
    }
    co_return status;
}

constexpr std::string_view usage =
    "usage: cat [--backend auto|io_uring|epoll|poll] [--] [FILE]...\n"
    "Copies each FILE (`-` or none: standard input) to standard output.\n";

}  // namespace

int main(int argc, char** argv) {
    corio::backend_kind backend = corio::backend_kind::automatic;
    std::vector<std::string_view> names;
    examples::flags flags("cat", usage);
    if (std::optional<int> status = flags.backend(backend).operands(names).parse(argc, argv))
        return *status;
    if (names.empty()) names.push_back("-");
    ::signal(SIGPIPE, SIG_IGN);  // a reader that goes away (`cat big | head`) is EPIPE instead
    try {
        corio::context ctx({.backend = backend, .name = "cat"});
        return corio::run(ctx, cat(std::move(names)));
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "cat: {}\n", e.what());
        return 1;
    }
}
