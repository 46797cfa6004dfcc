// histogram.hpp — latency percentiles in fixed memory, for the load generators.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace examples {

/// Latencies in ns: exact below 256 ns, above that 128 buckets per power of two, so a bucket is
/// at most 1/128 (0.8%) of its values wide. Fixed size: recording never allocates.
class histogram {
public:
    void record(std::uint64_t ns) noexcept { ++counts_[index(ns)], ++total_; }
    void merge(const histogram& other) noexcept {
        for (std::size_t i = 0; i < buckets; ++i) counts_[i] += other.counts_[i];
        total_ += other.total_;
    }
    /// The value below which a fraction `q` of the recordings lie (the middle of its bucket).
    double quantile(double q) const noexcept {
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets; ++i) {
            seen += counts_[i];
            if (seen > rank) return static_cast<double>(lower(i)) + width(i) / 2.0;
        }
        return 0;
    }

private:
    static constexpr int sub_bits = 7;
    static constexpr std::uint64_t linear = 2 << sub_bits, sub = 1 << sub_bits;
    static constexpr std::size_t buckets = linear + (64 - sub_bits - 1) * sub;

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < linear) return v;
        const int shift = std::bit_width(v) - (sub_bits + 1);  // v >> shift is in [sub, 2 sub)
        return linear + (shift - 1) * sub + ((v >> shift) - sub);
    }
    static std::uint64_t lower(std::size_t i) noexcept {
        if (i < linear) return i;
        const std::size_t shift = (i - linear) / sub + 1;
        return ((i - linear) % sub + sub) << shift;
    }
    static double width(std::size_t i) noexcept {
        return i < linear ? 1.0 : static_cast<double>(std::uint64_t{1} << ((i - linear) / sub + 1));
    }

    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t total_ = 0;
};

}  // namespace examples
