// message_pattern.hpp — the messages a load generator sends: each one different, none allocated.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace examples {

/// Messages of `size` bytes, each a slice of one random pattern (`size` + 256 bytes, a fixed
/// seed) at an offset chosen by its connection and its number: consecutive messages differ, so
/// an echo that lost, repeated or reordered bytes does not match. Allocates the pattern once.
class message_pattern {
public:
    explicit message_pattern(std::size_t size) : size_(size), bytes_(size + 256) {
        std::mt19937 random(42);
        for (std::byte& b : bytes_) b = static_cast<std::byte>(random());
    }

    /// Message `number` of connection `connection`; valid as long as the pattern.
    std::span<const std::byte> message(int connection, std::uint64_t number) const noexcept {
        const std::uint64_t at = (static_cast<std::uint64_t>(connection) * 37 + number * 101) % 251;
        return std::span(bytes_).subspan(at, size_);
    }

    /// Writes messages `first`, `first` + 1, … of `connection` one after the other into `out`, as
    /// many as fit whole.
    void fill(std::span<std::byte> out, int connection, std::uint64_t first) const noexcept {
        for (std::size_t i = 0; (i + 1) * size_ <= out.size(); ++i)
            std::ranges::copy(message(connection, first + i), out.begin() + i * size_);
    }

private:
    std::size_t size_;
    std::vector<std::byte> bytes_;
};

}  // namespace examples
