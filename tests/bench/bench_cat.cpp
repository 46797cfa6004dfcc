// bench=cat — the cat example against coreutils cat, copying a page-cached 1 GiB file.
//
// Both run as child processes on the same file, their standard output either a pipe that this
// program drains (with 1 MiB reads, as fast as a reader can) or /dev/null, where only reading
// the file costs anything. A rep times one child from its start until it has exited and, for
// the pipe, until every byte has come out (the count is checked). The variants alternate rep
// by rep, so that a shared machine's drift affects all alike; each value is the median.
//   corio-pipe, coreutils-pipe, corio-devnull, coreutils-devnull: GB/s (10^9 bytes per second)
// and, as '#' lines, the CPU time the copying process used (wait4's rusage): a figure that a
// busy machine disturbs less than the rate.
// The example picks its backend as usual (CORIO_BACKEND is inherited). The file is written in
// a fresh directory under the temporary directory ($TMPDIR) and removed at the end.
#include "bench.hpp"

#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#ifndef CORIO_BENCH_CAT_EXAMPLE
#error "meson passes the path of the cat example as CORIO_BENCH_CAT_EXAMPLE"
#endif

extern char** environ;

namespace {

constexpr std::size_t file_size = std::size_t{1} << 30;
constexpr std::size_t block = std::size_t{1} << 20;  // writing the file, draining the pipe
constexpr int reps = 7;

/// The directory holding the file, removed at exit (bench::fail included).
std::string temp_dir;

[[noreturn]] void fail_errno(std::string_view what) {
    bench::fail(fmt::format("{}: {}", what, std::strerror(errno)));
}

/// Writes `file_size` bytes of a non-repeating pattern to `path`, then reads them back once
/// (the copies then find every page in the page cache).
void make_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) fail_errno("creating " + path);
    std::vector<std::uint64_t> words(block / sizeof(std::uint64_t));
    std::uint64_t x = 0x9e3779b97f4a7c15;
    for (std::size_t done = 0; done < file_size; done += block) {
        for (std::uint64_t& w : words) w = x = x * 6364136223846793005 + 1442695040888963407;
        if (::write(fd, words.data(), block) != static_cast<ssize_t>(block)) fail_errno("write");
    }
    ::close(fd);
    const int again = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (again < 0) fail_errno("open");
    while (::read(again, words.data(), block) > 0) {
    }
    ::close(again);
}

/// Runs `program file` with standard output on `out_fd`; the child's pid.
pid_t start(const char* program, const std::string& file, int out_fd, int close_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    if (close_fd >= 0) posix_spawn_file_actions_addclose(&actions, close_fd);
    std::vector<char*> argv{const_cast<char*>(program), const_cast<char*>(file.c_str()), nullptr};
    pid_t pid = -1;
    const int e = posix_spawnp(&pid, program, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (e != 0) bench::fail(fmt::format("starting {}: {}", program, std::strerror(e)));
    return pid;
}

/// Waits for a child that must succeed; its CPU time (user + system) in seconds.
double wait_success(pid_t pid, const char* program) {
    int status = 0;
    rusage usage{};
    if (::wait4(pid, &status, 0, &usage) != pid) fail_errno("wait4");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bench::fail(fmt::format("{} failed (wait status {:#x})", program, status));
    }
    auto seconds = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// One copy's rate in GB/s and the CPU seconds the copying process used.
struct measurement {
    double rate;
    double cpu;
};

/// One copy into a pipe drained here.
measurement through_pipe(const char* program, const std::string& file, std::byte* buf) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe2");
    double cpu = 0;
    const double elapsed = bench::seconds([&] {
        const pid_t pid = start(program, file, fds[1], fds[0]);
        ::close(fds[1]);
        std::size_t total = 0;
        for (ssize_t n; (n = ::read(fds[0], buf, block)) != 0; total += n) {
            if (n < 0) fail_errno("read(pipe)");
        }
        ::close(fds[0]);
        cpu = wait_success(pid, program);
        if (total != file_size) {
            bench::fail(fmt::format("{} copied {} bytes, not {}", program, total, file_size));
        }
    });
    return {static_cast<double>(file_size) / 1e9 / elapsed, cpu};
}

/// One copy into /dev/null.
measurement into_devnull(const char* program, const std::string& file, int devnull) {
    double cpu = 0;
    const double elapsed =
        bench::seconds([&] { cpu = wait_success(start(program, file, devnull, -1), program); });
    return {static_cast<double>(file_size) / 1e9 / elapsed, cpu};
}

struct variant {
    std::string name;
    const char* program;
    bool pipe;
    std::vector<double> rates = {};
    std::vector<double> cpu = {};
};

}  // namespace

int main() {
    const char* example = CORIO_BENCH_CAT_EXAMPLE;
    const std::string backend = bench::backend_name();
    temp_dir = (std::filesystem::temp_directory_path() / "bench_cat.XXXXXX").string();
    if (!::mkdtemp(temp_dir.data())) fail_errno("mkdtemp");
    std::atexit([] { std::filesystem::remove_all(temp_dir); });
    const std::string file = temp_dir + "/file";
    make_file(file);
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull < 0) fail_errno("/dev/null");
    const auto buf = std::make_unique_for_overwrite<std::byte[]>(block);
    bench::note("bench=cat corio-backend={} file={} MiB reps={} (coreutils: `cat` from PATH)",
                backend, file_size >> 20, reps);

    std::vector<variant> variants{{"corio-pipe", example, true},
                                  {"coreutils-pipe", "cat", true},
                                  {"corio-devnull", example, false},
                                  {"coreutils-devnull", "cat", false}};
    auto rep = [&](const variant& v) {
        return v.pipe ? through_pipe(v.program, file, buf.get())
                      : into_devnull(v.program, file, devnull);
    };
    for (const variant& v : variants) rep(v);  // warm-up, not counted
    for (int i = 0; i < reps; ++i) {
        for (variant& v : variants) {
            const measurement m = rep(v);
            v.rates.push_back(m.rate);
            v.cpu.push_back(m.cpu);
        }
    }
    ::close(devnull);

    for (const variant& v : variants) {
        bench::report("cat", v.name, bench::median(v.rates), "GB/s");
    }
    for (const variant& v : variants) {
        bench::note("{}: the copying process used {:.3f} s of CPU (median)", v.name,
                    bench::median(v.cpu));
    }
    auto ratio = [&](std::size_t corio, std::size_t coreutils, auto member) {
        return bench::median(variants[corio].*member) / bench::median(variants[coreutils].*member);
    };
    bench::note(
        "corio/coreutils: rate pipe {:.2f}x, devnull {:.2f}x (as fast: 1x); CPU pipe {:.2f}x, "
        "devnull {:.2f}x",
        ratio(0, 1, &variant::rates), ratio(2, 3, &variant::rates), ratio(0, 1, &variant::cpu),
        ratio(2, 3, &variant::cpu));
    return 0;
}
