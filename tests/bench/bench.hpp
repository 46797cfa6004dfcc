// Shared plumbing of the corio benchmarks: wall-clock measurement, the median over repetitions
// and the one-line report format that tests/bench/run.sh prints and tooling parses:
//
//   bench=<name> variant=<system>-<case> value=<x> unit=<u>
//
// Every benchmark program measures corio and its baselines in the same process run, so the
// numbers of one run are comparable with each other (same CPU, kernel, flags and noise).
// Lines starting with '#' are context for humans (backend, library versions), not measurements.
#pragma once

#include <corio/context.hpp>
#include <corio/error.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bench {

/// Seconds of wall-clock (steady) time spent in one call of `body()`.
template <class Body>
double seconds(Body&& body) {
    const auto start = std::chrono::steady_clock::now();
    body();
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    return elapsed.count();
}

/// Calls `measure()` `reps` times and returns the median of its results. The median rather
/// than the mean because the target is a small, shared VM: one descheduled repetition must not
/// move the result.
/// The median of `values` (not empty).
inline double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

template <class Measure>
double median_of(int reps, Measure&& measure) {
    std::vector<double> values;
    values.reserve(static_cast<std::size_t>(reps));
    for (int i = 0; i < reps; ++i) values.push_back(measure());
    return median(std::move(values));
}

/// Reports a benchmark that measured something wrong (a wrong result, an error) and exits 1,
/// so run.sh fails instead of printing a meaningless number.
[[noreturn]] inline void fail(std::string_view what) {
    fmt::print(stderr, "{}: {}\n", program_invocation_short_name, what);
    std::exit(1);
}

/// The backend a default context gets here (what CORIO_BACKEND or the fallback chose); fails
/// the benchmark when no context can be built.
inline std::string backend_name() {
    try {
        corio::context probe;
        return std::string(corio::to_string(probe.backend()));
    } catch (const corio::error& e) {
        fail(fmt::format("no corio context: {}", e.what()));
    }
}

/// Prints one measurement line. Large values are printed as integers, small ones with three
/// significant digits: more would be noise on the machines these run on.
inline void report(std::string_view bench, std::string_view variant, double value,
                   std::string_view unit) {
    const int magnitude = value > 0 ? static_cast<int>(std::floor(std::log10(value))) : 0;
    const int decimals = std::clamp(2 - magnitude, 0, 6);
    fmt::print("bench={} variant={} value={:.{}f} unit={}\n", bench, variant, value, decimals,
               unit);
    std::fflush(stdout);
}

/// Prints the line that stands for every variant of `system` when it could not be built.
inline void report_skipped(std::string_view bench, std::string_view system,
                           std::string_view reason) {
    fmt::print("bench={} variant={}-* skipped: {}\n", bench, system, reason);
    std::fflush(stdout);
}

/// Prints a '#' context line (not a measurement).
template <class... Args>
void note(fmt::format_string<Args...> format, Args&&... args) {
    fmt::print("# {}\n", fmt::format(format, std::forward<Args>(args)...));
    std::fflush(stdout);
}

}  // namespace bench
