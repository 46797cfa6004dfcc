// corio::thread_pool — a context's worker threads for blocking work (QEMU's ThreadPoolAio).
//
// Every context has one, created on first use (context::pool()). Work is submitted from the
// context's home thread, runs on a worker, and its completion runs back on the home thread, in
// a bottom-half pass of the context. Workers are started on demand — when work arrives and no
// worker is idle, up to `max` — one at a time: a worker being started counts as idle, and it
// starts the next only if the backlog outlasted its start (a burst of short jobs is absorbed by
// the workers already there; work that blocks still gets a worker per job). A worker idle for
// `idle_timeout` retires while more than `min` are alive. Work that never blocks is best run
// with `max` near the number of CPUs: with more jobs in flight than workers, every worker is
// busy whenever work arrives, and the pool grows to `max`.
//
// Cancellation (a std::stop_token, from any thread): work that has not started is removed and
// never runs; its completion sees ECANCELED at once. Work that has started cannot be
// interrupted: it runs to its end (so whatever it references stays in use until then), and
// its completion then sees ECANCELED, its result destroyed unseen — unless the job keeps late
// results (I/O: the bytes were transferred, so the count is reported). Either way the
// completion runs exactly once.
//
// Destroying the context: queued work is dropped (neither the function nor the completion
// runs; both are destroyed), running work is waited for and its completion dropped. No worker
// outlives the context.
#pragma once

#include <corio/result.hpp>
#include <corio/work_item.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio {

class context;
class thread_pool;

/// Counters of a pool (a snapshot; any thread).
struct thread_pool_stats {
    int min_threads = 0;  ///< the limits in force
    int max_threads = 0;
    int threads = 0;              ///< workers alive
    int idle = 0;                 ///< workers waiting for work
    std::size_t queued = 0;       ///< jobs not started yet
    std::size_t running = 0;      ///< jobs on a worker now
    std::uint64_t completed = 0;  ///< jobs whose function ran to its end
    std::uint64_t cancelled = 0;  ///< jobs cancelled before or while running
};

/// One unit of work, type-erased. Allocated by submit(); owned by the pool until its
/// completion has run (or it was dropped).
class pool_job {
public:
    /// `keep_late_result`: a stop request that comes after the work started does not change
    /// what the completion sees.
    explicit pool_job(bool keep_late_result = false) noexcept
        : keep_late_result_(keep_late_result) {}
    virtual ~pool_job() = default;
    pool_job(const pool_job&) = delete;
    pool_job& operator=(const pool_job&) = delete;

protected:
    /// On a worker. Must not throw (store the exception instead).
    virtual void execute() noexcept = 0;
    /// On the home thread, exactly once unless the context dies first: `cancelled` when the
    /// function never ran or its result is to be dropped. May throw: the exception propagates
    /// out of the context's poll(), as for any callback.
    virtual void complete(bool cancelled) = 0;

private:
    friend class thread_pool;
    // `submitting`: linked, its stop callbacks being registered, not yet visible to workers.
    enum class state : unsigned char { submitting, queued, running, done, cancelled };

    thread_pool* pool_ = nullptr;
    state state_ = state::submitting;  // guarded by the pool's mutex
    bool keep_late_result_;
    bool dropped_ = false;      // stopped while running: the result is not delivered (mutex)
    pool_job* prev_ = nullptr;  // the pool's list of live jobs (mutex)
    pool_job* next_ = nullptr;
    pool_job* queue_next_ = nullptr;  // the FIFO of queued jobs (mutex)
    pool_job* queue_prev_ = nullptr;
    struct tagged_item {  // standard layout: `item` converts back to the struct
        work_item item;
        pool_job* job = nullptr;
    };
    tagged_item done_item_;  // the worker's hand-over, or a queued job's cancellation
    struct on_stop {
        pool_job* job;
        void operator()() const noexcept;
    };
    std::optional<std::stop_callback<on_stop>> stop_;
    std::optional<std::stop_callback<on_stop>> stop2_;
};

class thread_pool {
public:
    /// Sets the worker limits (QEMU's thread_pool_update_params): 0 <= min <= max, max >= 1,
    /// else corio::error(EINVAL) and nothing changes. Starts workers up to `min`; workers above
    /// a lowered `max` retire once their current job is done. Defaults: min 0, max 64.
    void set_limits(int min_threads, int max_threads);
    /// How long a worker beyond `min` waits for work before it retires (default 10 s).
    void set_idle_timeout(std::chrono::milliseconds timeout);

    /// Runs `fn()` on a worker; then `done(result<R>)` on the home thread, R being fn's return
    /// type (result<void> for void), with ECANCELED if `stop` was requested (see above). An
    /// exception thrown by `fn` is rethrown on the home thread in place of calling `done`
    /// (propagating out of poll()). Home thread only; allocates the job.
    template <class Fn, class Done>
    void submit(Fn fn, Done done, std::stop_token stop = {});

    /// The primitive under submit (and corio::offload): takes ownership of `job`. `stop` and
    /// `stop2` (either may be empty) both cancel it. Home thread only.
    void submit_job(std::unique_ptr<pool_job> job, std::stop_token stop,
                    std::stop_token stop2 = {});

    thread_pool_stats stats() const noexcept;

    ~thread_pool();
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

private:
    friend class context;
    friend class pool_job;
    explicit thread_pool(context& ctx);

    struct state;
    std::unique_ptr<state> s_;
};

namespace detail {

template <class R>
using pool_value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

/// A function and where its outcome goes, for both submit() and corio::offload.
template <class Fn>
class function_job : public pool_job {
public:
    using value_type = std::invoke_result_t<Fn&>;

    explicit function_job(Fn fn, bool keep_late_result = false)
        : pool_job(keep_late_result), fn_(std::move(fn)) {}

protected:
    void execute() noexcept override {
        try {
            if constexpr (std::is_void_v<value_type>) {
                fn_();
                value_.emplace();
            } else {
                value_.emplace(fn_());
            }
        } catch (...) {
            error_ = std::current_exception();
        }
    }

    Fn fn_;
    std::optional<pool_value<value_type>> value_;
    std::exception_ptr error_;
};

template <class Fn, class Done>
class callback_job final : public function_job<Fn> {
public:
    using value_type = typename function_job<Fn>::value_type;

    callback_job(Fn fn, Done done) : function_job<Fn>(std::move(fn)), done_(std::move(done)) {}

private:
    void complete(bool cancelled) override {
        if (cancelled) {
            done_(result<value_type>::from_errno(ECANCELED));
        } else if (this->error_) {
            std::rethrow_exception(this->error_);
        } else if constexpr (std::is_void_v<value_type>) {
            done_(result<void>{});
        } else {
            done_(result<value_type>(std::move(*this->value_)));
        }
    }

    Done done_;
};

}  // namespace detail

template <class Fn, class Done>
void thread_pool::submit(Fn fn, Done done, std::stop_token stop) {
    submit_job(std::make_unique<detail::callback_job<Fn, Done>>(std::move(fn), std::move(done)),
               std::move(stop));
}

}  // namespace corio
