// <corio/fmt.hpp> — fmt formatters for corio's types, opt-in: no other corio header includes
// fmt, so only the translation units that include this one compile it.
#pragma once

#include <corio/context.hpp>

#include <fmt/format.h>

#include <string_view>

/// Formats a context_stats as `corio::to_string` does; format specs are those of a string
/// (`{:>80}`).
template <>
struct fmt::formatter<corio::context_stats> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const corio::context_stats& s, FormatContext& fc) const {
        return fmt::formatter<std::string_view>::format(corio::to_string(s), fc);
    }
};
