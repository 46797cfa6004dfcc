// flags.hpp — the examples' command lines, parsed in one place so that the examples themselves
// show corio rather than argument parsing.
//
// An example declares its flags, each bound to the variable that holds its default, then calls
// parse(). Every example answers the same way: --help prints the usage and exits 0; an unknown
// flag, a missing or bad value, or an unexpected argument prints one line naming it and what is
// accepted, and exits 2 (1 for a bad --backend, as for a bad CORIO_BACKEND or a backend this
// machine refuses: the exit status of a backend that cannot be had).
#pragma once

#include <corio/backend.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace examples {

class flags {
public:
    /// `program` starts every message; `usage` is what --help prints.
    flags(std::string_view program, std::string_view usage) : program_(program), usage_(usage) {}

    /// `--name N`: a number (integer or floating-point, as `out` is) from `min` to `max`.
    template <class T>
    flags& number(std::string_view name, T& out, std::type_identity_t<T> min,
                  std::type_identity_t<T> max) {
        return value(
            name, fmt::format("a number from {} to {}", min, max),
            [&out, min, max](std::string_view text) {
                T n{};
                auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
                if (ec != std::errc() || end != text.data() + text.size() || n < min || n > max)
                    return false;
                out = n;
                return true;
            });
    }

    /// `--name TEXT`: any text, or what `valid` accepts (`accepted` says what that is).
    flags& text(std::string_view name, std::string& out, std::string accepted = "a value",
                std::function<bool(std::string_view)> valid = nullptr) {
        return value(name, std::move(accepted), [&out, valid](std::string_view text) {
            if (valid && !valid(text)) return false;
            out = text;
            return true;
        });
    }

    /// `--backend B`: auto (CORIO_BACKEND, else the best available), io_uring, epoll or poll.
    flags& backend(corio::backend_kind& out) {
        value("--backend", "auto, io_uring, epoll or poll", [&out](std::string_view text) {
            for (auto kind : {corio::backend_kind::automatic, corio::backend_kind::io_uring,
                              corio::backend_kind::epoll, corio::backend_kind::poll}) {
                if (text == corio::to_string(kind)) return out = kind, true;
            }
            return false;
        });
        flags_.back().status = 1;
        return *this;
    }

    /// `--name` alone: sets `out`.
    flags& toggle(std::string_view name, bool& out) {
        flags_.push_back({std::string(name), "", [&out](std::string_view) { return out = true; }});
        return *this;
    }

    /// The arguments that are not flags (`-` is one; after `--`, all are). Without this call,
    /// any such argument is refused.
    flags& operands(std::vector<std::string_view>& out) {
        operands_ = &out;
        return *this;
    }

    /// Parses the command line: std::nullopt if the program should go on; otherwise the exit
    /// status, after --help (0) or a bad argument (2, with a message on stderr).
    std::optional<int> parse(int argc, char** argv) const {
        bool only_operands = false;
        for (int i = 1; i < argc; ++i) {
            const std::string_view arg = argv[i];
            if (only_operands || arg == "-" || !arg.starts_with('-')) {
                if (!operands_) return refuse(2, "unexpected argument '{}' (see --help)", arg);
                operands_->push_back(arg);
                continue;
            }
            if (arg == "--" && operands_) {
                only_operands = true;
                continue;
            }
            if (arg == "--help") {
                fmt::print("{}", usage_);
                return 0;
            }
            const flag* f = find(arg);
            if (!f) return refuse(2, "unknown flag '{}' (flags: {})", arg, names());
            if (f->accepted.empty()) {
                f->set("");
                continue;
            }
            if (i + 1 == argc) return refuse(2, "{} needs a value: {}", arg, f->accepted);
            const std::string_view value = argv[++i];
            if (!f->set(value))
                return refuse(f->status, "{} '{}': expected {}", arg, value, f->accepted);
        }
        return std::nullopt;
    }

private:
    struct flag {
        std::string name;
        std::string accepted;  // what the value may be; empty: a toggle, without a value
        std::function<bool(std::string_view)> set;
        int status = 2;  // the exit status for a bad value
    };

    flags& value(std::string_view name, std::string accepted,
                 std::function<bool(std::string_view)> set) {
        flags_.push_back({std::string(name), std::move(accepted), std::move(set)});
        return *this;
    }

    const flag* find(std::string_view name) const {
        for (const flag& f : flags_) {
            if (f.name == name) return &f;
        }
        return nullptr;
    }

    std::string names() const {
        std::string all;
        for (const flag& f : flags_) all += f.name + ", ";
        return all + "--help";
    }

    template <class... Args>
    int refuse(int status, fmt::format_string<Args...> format, Args&&... args) const {
        fmt::print(stderr, "{}: {}\n", program_, fmt::format(format, std::forward<Args>(args)...));
        return status;
    }

    std::string program_;
    std::string_view usage_;
    std::vector<flag> flags_;
    std::vector<std::string_view>* operands_ = nullptr;
};

}  // namespace examples
