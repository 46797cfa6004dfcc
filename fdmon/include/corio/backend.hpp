// corio::backend_kind — which fdmon backend a context waits with.
#pragma once

#include <cstdint>
#include <string_view>

namespace corio {

/// The fdmon backends (QEMU's FDMonOps), in the order `automatic` tries them.
enum class backend_kind : std::uint8_t { automatic, io_uring, epoll, poll };

/// "auto", "io_uring", "epoll", "poll".
std::string_view to_string(backend_kind kind) noexcept;

}  // namespace corio
