#include <corio/error.hpp>

#include <fmt/format.h>

namespace corio {

error::error(int errnum, std::string operation)
    : std::system_error(errnum, std::generic_category(), fmt::format("corio: {}", operation)),
      operation_(std::move(operation)) {}

}  // namespace corio
