// load_stats.hpp — what a load generator measured: round trips, their latency, errors.
#pragma once

#include "common/histogram.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace examples {

/// Kept per thread (recording never allocates nor synchronises), merged at the end.
struct load_stats {
    histogram latency;  ///< in ns
    std::uint64_t roundtrips = 0;
    int errors = 0;

    /// `count` round trips ended, each after `latency`.
    void record(std::size_t count, std::chrono::nanoseconds latency_each) noexcept {
        for (std::size_t i = 0; i < count; ++i)
            latency.record(static_cast<std::uint64_t>(latency_each.count()));
        roundtrips += count;
    }

    void merge(const load_stats& other) noexcept {
        latency.merge(other.latency);
        roundtrips += other.roundtrips;
        errors += other.errors;
    }

    /// `roundtrips=N seconds=S rt_per_s=R p50_us=X p99_us=X p999_us=X errors=E`, for a run of
    /// `seconds` (more than 0).
    std::string summary(double seconds) const {
        return fmt::format(
            "roundtrips={} seconds={:.3f} rt_per_s={:.0f} p50_us={:.1f} p99_us={:.1f} "
            "p999_us={:.1f} errors={}",
            roundtrips, seconds, static_cast<double>(roundtrips) / seconds,
            latency.quantile(0.5) / 1e3, latency.quantile(0.99) / 1e3,
            latency.quantile(0.999) / 1e3, errors);
    }
};

}  // namespace examples
