// cat — concatenates files to standard output with corio's file awaitables.
//
// Like coreutils cat: every argument is a file, `-` (or none at all) standard input; a file
// that cannot be read is reported and the others are still copied (exit status 1). A regular
// file is read at explicit offsets with `depth` reads in flight, each a task spawned on the same
// context: while one chunk is written, the next is read (io_uring: a write and the next read
// leave in one io_uring_enter; epoll and poll: file reads run on the context's thread pool).
// Other files (pipes, terminals, a redirected stdin) are read in order, one chunk at a time.
// SIGPIPE is ignored: a reader that goes away (`cat big | head -c 10`) is EPIPE from the write,
// and cat stops quietly with status 0. Standard input and output keep their flags (they are
// the shell's): on epoll and poll, a read from a blocking pipe blocks the idle loop thread.
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
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

// Measured with tests/bench/bench_cat.cpp: with io_uring, 2 × 128 KiB cost the CPU time of
// coreutils cat (larger buffers leave the CPU cache between read and write); without, every read
// is a thread-pool job, and 256 KiB chunks halve those hand-offs.
constexpr std::size_t depth = 2;

std::size_t chunk_size(const corio::context& ctx) {
    return ctx.has_io_uring() ? 128 << 10 : 256 << 10;
}

void report(std::string_view name, std::error_code error) {
    fmt::print(stderr, "cat: {}: {}\n", name, error.message());
}

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

/// A regular file: `depth` chunks in flight (`buffers` holds them), written in file order. The
/// read error, if any.
corio::task<std::error_code> copy_file(int fd, std::span<std::byte> buffers, output& out) {
    corio::context& ctx = *corio::context::current();
    const std::size_t chunk = buffers.size() / depth;
    std::deque<corio::join_handle<corio::result<std::size_t>>> reads;  // in file order
    std::int64_t next = 0;                                             // where the next one reads
    auto start_read = [&](std::span<std::byte> buf) {
        reads.push_back(corio::spawn(ctx, read_at(fd, buf, next), "read"));
        next += static_cast<std::int64_t>(buf.size());
    };
    for (std::size_t i = 0; i < depth; ++i) start_read(buffers.subspan(i * chunk, chunk));

    std::error_code error;
    bool finished = false;
    // Buffer i belongs to the oldest read: reads are started, and refilled, in buffer order.
    // Every read is awaited, also after the end or an error: each one writes into a buffer.
    for (std::size_t i = 0; !reads.empty(); i = (i + 1) % depth) {
        corio::result<std::size_t> n = co_await reads.front();
        reads.pop_front();
        if (finished) continue;
        const std::span<std::byte> buf = buffers.subspan(i * chunk, chunk);
        // (The co_await is a statement of its own: as an operand of && in the condition, GCC 12
        // leaked the awaited task's frame once per file, AddressSanitizer showed.)
        if (!n) {
            error = n.error();
        } else if (*n > 0) {
            const bool written = co_await out.put(buf.first(*n));
            if (written && *n == chunk) {
                start_read(buf);
                continue;
            }
        }
        finished = true;  // the end of the file, a read error, or a write error
    }
    co_return error;
}

/// Anything else: read at the file position until it says end of file. The read error, if any.
corio::task<std::error_code> copy_stream(int fd, std::span<std::byte> buf, output& out) {
    for (;;) {
        corio::result<std::size_t> n = co_await corio::read(fd, buf);
        if (!n) co_return n.error();
        if (*n == 0) co_return std::error_code();
        const bool written = co_await out.put(buf.first(*n));
        if (!written) co_return std::error_code();
    }
}

corio::task<int> cat(std::vector<std::string_view> names) {
    const std::size_t chunk = chunk_size(*corio::context::current());
    const auto buffers = std::make_unique_for_overwrite<std::byte[]>(depth * chunk);
    const std::span<std::byte> all(buffers.get(), depth * chunk);
    output out;
    int status = 0;
    for (std::string_view name : names) {
        const bool from_stdin = name == "-";
        int fd = STDIN_FILENO;
        if (!from_stdin) {
            // name comes from argv: NUL-terminated, alive until main returns.
            corio::result<int> opened = co_await corio::open(name.data(), O_RDONLY);
            if (!opened) {
                report(name, opened.error());
                status = 1;
                continue;
            }
            fd = *opened;
        }
        struct stat st {};
        const bool regular = !from_stdin && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        const std::error_code error = regular ? co_await copy_file(fd, all, out)
                                              : co_await copy_stream(fd, all.first(chunk), out);
        if (!from_stdin) (void)co_await corio::close(fd);
        if (error) {
            report(name, error);
            status = 1;
        }
        if (out.error == std::errc::broken_pipe) co_return status;  // the reader has gone
        if (out.error) {
            report("write error", out.error);
            co_return 1;
        }
    }
    co_return status;
}

constexpr std::string_view usage =
    "usage: cat [--backend auto|io_uring|epoll|poll] [--] [FILE]...\n"
    "Copies each FILE (`-`: standard input; none: standard input) to standard output.\n"
    "  --backend B  the event loop's backend (default auto: CORIO_BACKEND, else the best)\n";

}  // namespace

int main(int argc, char** argv) {
    corio::backend_kind backend = corio::backend_kind::automatic;
    std::vector<std::string_view> names;
    examples::flags flags("cat", usage);
    if (std::optional<int> status = flags.backend(backend).operands(names).parse(argc, argv))
        return *status;
    if (names.empty()) names.push_back("-");
    ::signal(SIGPIPE, SIG_IGN);  // EPIPE as a value instead (see the top of the file)
    try {
        corio::context ctx({.backend = backend, .name = "cat"});
        return corio::run(ctx, cat(std::move(names)));
    } catch (const corio::error& e) {  // e.g. a backend this machine refuses
        fmt::print(stderr, "cat: {}\n", e.what());
        return 1;
    }
}
