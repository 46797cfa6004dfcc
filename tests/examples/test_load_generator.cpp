// What echo_client's measuring rests on (examples/common/): its messages and its statistics.
#include "common/load_stats.hpp"
#include "common/message_pattern.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("messages have their size, and consecutive ones differ") {
    const examples::message_pattern pattern(64);
    for (int connection = 0; connection < 3; ++connection) {
        for (std::uint64_t m = 0; m < 1000; ++m) {
            CAPTURE(m);
            const auto a = pattern.message(connection, m), b = pattern.message(connection, m + 1);
            REQUIRE(a.size() == 64);
            CHECK(!std::ranges::equal(a, b));
        }
    }
    CHECK(std::ranges::equal(pattern.message(1, 5), examples::message_pattern(64).message(1, 5)));
}

TEST_CASE("a batch holds consecutive messages, whole ones only") {
    const examples::message_pattern pattern(8);
    std::vector<std::byte> batch(3 * 8 + 5, std::byte{0x5a});
    pattern.fill(batch, 2, 10);
    for (std::uint64_t i = 0; i < 3; ++i)
        CHECK(std::ranges::equal(std::span(batch).subspan(i * 8, 8), pattern.message(2, 10 + i)));
    CHECK(std::ranges::all_of(std::span(batch).last(5),
                              [](std::byte b) { return b == std::byte{0x5a}; }));
}

TEST_CASE("statistics count round trips and errors, and merge") {
    examples::load_stats a, b;
    a.record(3, 10us);
    b.record(1, 1000us);
    b.errors = 2;
    a.merge(b);
    CHECK(a.roundtrips == 4);
    CHECK(a.errors == 2);
    CHECK(a.latency.quantile(0.5) == doctest::Approx(10'000).epsilon(0.01));
    CHECK(a.latency.quantile(0.99) == doctest::Approx(1'000'000).epsilon(0.01));
    CHECK(
        a.summary(2.0) ==
        "roundtrips=4 seconds=2.000 rt_per_s=2 p50_us=10.0 p99_us=1001.5 p999_us=1001.5 errors=2");
}
