// What echo_client's measuring rests on (examples/common/): its messages and its statistics.
#include "common/load_stats.hpp"
#include "common/message_pattern.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>

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
