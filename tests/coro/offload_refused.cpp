// Must not compile with GCC 12 (tests/meson.build): work written inside the co_await with a
// by-copy capture that has a destructor, which GCC 12 would destroy twice.
#include <corio/offload.hpp>
#include <corio/task.hpp>

#include <string>

corio::task<std::size_t> natural_form(std::string name) {
    corio::result<std::size_t> r = co_await corio::offload([s = name] { return s.size(); });
    co_return r.value();
}
