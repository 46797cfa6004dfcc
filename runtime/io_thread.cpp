// io_thread (see io_thread.hpp).
#include <corio/io_thread.hpp>

#include <pthread.h>
#include <exception>
#include <future>
#include <optional>
#include <thread>
#include <utility>

namespace corio {

io_thread::io_thread(std::string name, context_options options) : name_(std::move(name)) {
    if (options.name.empty() || options.name == context_options{}.name) options.name = name_;
    std::promise<context*> started;
    std::future<context*> ready = started.get_future();
    thread_ = std::thread([this, &started, opts = std::move(options)]() mutable {
        pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
        std::optional<context> ctx;
        try {
            ctx.emplace(std::move(opts));
        } catch (...) {
            started.set_exception(std::current_exception());
            return;
        }
        started.set_value(&*ctx);  // `started` is gone once the constructor has returned
        ctx->run();
        while (ctx->poll(false)) {  // drain what is ready: posted work, completions
        }
        // From here on stop() leaves the context alone; wait for one that is using it.
        alive_.store(false, std::memory_order_seq_cst);
        while (stoppers_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    });
    try {
        ctx_ = ready.get();
    } catch (...) {
        thread_.join();
        throw;
    }
    id_ = thread_.get_id();
}

io_thread::~io_thread() {
    stop();
    join();
}

void io_thread::stop() noexcept {
    // Dekker-style with the thread's exit (both sides seq_cst): either this sees the context
    // retired, or the thread sees this stopper and waits for it.
    stoppers_.fetch_add(1, std::memory_order_seq_cst);
    if (alive_.load(std::memory_order_seq_cst)) ctx_->stop();
    stoppers_.fetch_sub(1, std::memory_order_seq_cst);
}

void io_thread::join() {
    if (!thread_.joinable()) return;
    thread_.join();
}

}  // namespace corio
