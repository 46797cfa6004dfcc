// echo_server_asio — the Asio baseline of bench=echo: the echo server of Asio's own coroutine
// examples (asio::awaitable, co_spawn, use_awaitable), with a 16 KiB buffer per connection and
// TCP_NODELAY like the other servers. Built twice by meson: on Asio's default reactor (epoll)
// and, with ASIO_HAS_IO_URING and ASIO_DISABLE_EPOLL defined, on its io_uring backend.
//
// One thread runs the io_context, created with concurrency hint 1 (one thread: Asio may drop
// its internal locking), as a careful single-threaded server would.
//
// Usage: echo_server_asio_{epoll,io_uring} [--port P]   (127.0.0.1; 0 = any free port)
// The first line of output names the address, 127.0.0.1:<port>. SIGINT/SIGTERM (an
// asio::signal_set) stop the io_context; its destruction destroys every pending coroutine,
// which closes its socket. Exit status 0.
#include "echo_baseline.hpp"

#include <asio.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#if defined(ASIO_HAS_IO_URING) && defined(ASIO_DISABLE_EPOLL)
constexpr const char* backend = "io_uring";
#else
constexpr const char* backend = "epoll";
#endif

namespace {

using asio::ip::tcp;

asio::awaitable<void> session(tcp::socket socket) {
    std::array<char, 16 * 1024> buffer;  // in the frame, as in examples/echo_server.cpp
    try {
        for (;;) {
            const std::size_t n =
                co_await socket.async_read_some(asio::buffer(buffer), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(buffer.data(), n), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // EOF or a reset: the connection ends, the socket closes with the frame.
    }
}

asio::awaitable<void> listener(tcp::acceptor acceptor) {
    for (;;) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        socket.set_option(tcp::no_delay(true));
        asio::co_spawn(acceptor.get_executor(), session(std::move(socket)), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const std::string program = std::string("echo_server_asio_") + backend;
    const int port = echo_baseline::parse_port(argc, argv, program.c_str());
    try {
        asio::io_context context(1);
        asio::signal_set signals(context, SIGINT, SIGTERM);
        signals.async_wait([&](const std::error_code&, int) { context.stop(); });
        tcp::acceptor acceptor(context, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                                      static_cast<unsigned short>(port)));
        std::printf("echo_server_asio on 127.0.0.1:%u (asio %d.%d.%d, %s)\n",
                    acceptor.local_endpoint().port(), ASIO_VERSION / 100000,
                    ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100, backend);
        std::fflush(stdout);
        asio::co_spawn(context, listener(std::move(acceptor)), asio::detached);
        context.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server_asio_%s: %s\n", backend, e.what());
        return 1;
    }
    return 0;
}
