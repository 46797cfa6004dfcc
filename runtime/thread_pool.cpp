// The thread pool (see thread_pool.hpp).
//
// One mutex guards the queue, the job states and the counters; workers wait on a condition
// variable. The hand-over to the home thread is the job's work item, posted to the context.
// Job states (under the mutex):
//   submitting -> queued    its stop callbacks are registered: workers may take it
//   submitting -> cancelled stop request before it was queued: it is never queued
//   queued  -> running   a worker took it
//   queued  -> cancelled stop request: unlinked, item posted (completion: ECANCELED)
//   running -> done      the function returned: item posted (completion: the result, or
//                        ECANCELED if a stop request came meanwhile and the job drops late
//                        results)
#include <corio/context.hpp>
#include <corio/error.hpp>
#include <corio/thread_pool.hpp>

#include <pthread.h>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace corio {

namespace {

// The job a done/cancel item belongs to (pool_job::tagged_item's layout).
pool_job* job_of(work_item* item) noexcept {
    struct tagged {
        work_item item;
        pool_job* job;
    };
    return reinterpret_cast<tagged*>(item)->job;
}

}  // namespace

struct thread_pool::state {
    explicit state(context& c) : ctx(c) {}

    struct worker {
        std::thread thread;
        bool exited = false;  // the thread function is about to return: join it
    };

    context& ctx;
    mutable std::mutex mutex;
    std::condition_variable work_cv;  // workers: work, shutdown, or lowered limits
    std::condition_variable exit_cv;  // the destructor: a worker exited
    int min_threads = 0;
    int max_threads = 64;
    std::chrono::milliseconds idle_timeout{10000};
    int threads = 0;
    int idle = 0;
    /// Workers started that have not taken their first look at the queue yet. While one is
    /// starting no other is started: it counts as the idle worker the new work needs, and when
    /// it runs it starts the next one only if the backlog is still there (QEMU starts its
    /// workers one after another too). A burst of short jobs is then absorbed by the workers
    /// already running instead of starting a thread per job; work that blocks keeps the
    /// backlog up, so the pool still grows to `max_threads`, one thread-start apart.
    int starting = 0;
    std::size_t queued = 0;
    std::size_t running = 0;
    std::uint64_t completed = 0;
    std::uint64_t cancelled = 0;
    bool shutting_down = false;
    pool_job* queue_head = nullptr;  // FIFO of queued jobs
    pool_job* queue_tail = nullptr;
    pool_job* live = nullptr;  // every job not freed yet
    std::list<worker> workers;

    // ---- under the mutex

    void enqueue(pool_job* job) {
        job->queue_prev_ = queue_tail;
        job->queue_next_ = nullptr;
        (queue_tail ? queue_tail->queue_next_ : queue_head) = job;
        queue_tail = job;
        ++queued;
    }
    void unqueue(pool_job* job) {
        (job->queue_prev_ ? job->queue_prev_->queue_next_ : queue_head) = job->queue_next_;
        (job->queue_next_ ? job->queue_next_->queue_prev_ : queue_tail) = job->queue_prev_;
        job->queue_prev_ = job->queue_next_ = nullptr;
        --queued;
    }
    void link(pool_job* job) {
        job->prev_ = nullptr;
        job->next_ = live;
        if (live) live->prev_ = job;
        live = job;
    }
    void unlink(pool_job* job) {
        (job->prev_ ? job->prev_->next_ : live) = job->next_;
        if (job->next_) job->next_->prev_ = job->prev_;
    }
    /// Starts a worker; false if the system refused a thread.
    bool spawn();
    /// Takes the threads that have exited, to be joined outside the mutex.
    std::vector<std::thread> reap() {
        std::vector<std::thread> done;
        for (auto it = workers.begin(); it != workers.end();) {
            if (it->exited) {
                done.push_back(std::move(it->thread));
                it = workers.erase(it);
            } else {
                ++it;
            }
        }
        return done;
    }

    // ---- no mutex held

    void work(worker& self);
    /// Unregisters the stop callbacks (waiting for one running now) and frees the job.
    void free(pool_job* job) {
        job->stop_.reset();
        job->stop2_.reset();
        {
            const std::lock_guard lock(mutex);
            unlink(job);
        }
        delete job;
    }
    static void join(std::vector<std::thread> threads) {
        for (auto& t : threads) t.join();
    }
};

bool thread_pool::state::spawn() {
    worker& w = workers.emplace_back();
    try {
        w.thread = std::thread([this, &w] { work(w); });
    } catch (const std::system_error&) {
        workers.pop_back();
        return false;
    }
    ++threads;
    ++starting;
    return true;
}

void thread_pool::state::work(worker& self) {
    {
        // "pool:" + the context's name, as much as the 15 characters allowed.
        const std::string name = ("pool:" + ctx.name()).substr(0, 15);
        pthread_setname_np(pthread_self(), name.c_str());
    }
    std::unique_lock lock(mutex);
    --starting;
    // This worker takes one queued job; more than the idle ones can take calls for another.
    if (!shutting_down && queued > static_cast<std::size_t>(idle) + 1 && threads < max_threads) {
        spawn();
    }
    for (;;) {
        if (shutting_down || threads > max_threads) break;
        if (!queue_head) {
            ++idle;
            const bool woken = work_cv.wait_for(lock, idle_timeout, [this] {
                return queue_head || shutting_down || threads > max_threads;
            });
            --idle;
            if (!woken && threads > min_threads) break;  // idle too long: retire
            continue;
        }
        pool_job* job = queue_head;
        unqueue(job);
        job->state_ = pool_job::state::running;
        ++running;
        lock.unlock();
        job->execute();
        lock.lock();
        --running;
        ++completed;
        job->state_ = pool_job::state::done;
        ctx.post_item(&job->done_item_.item);
    }
    --threads;
    self.exited = true;
    exit_cv.notify_all();
}

void pool_job::on_stop::operator()() const noexcept {
    thread_pool::state& s = *job->pool_->s_;
    const std::lock_guard lock(s.mutex);
    switch (job->state_) {
        case state::submitting:  // submit_job sees it cancelled and posts its completion
            job->state_ = state::cancelled;
            ++s.cancelled;
            break;
        case state::queued:
            s.unqueue(job);
            job->state_ = state::cancelled;
            ++s.cancelled;
            s.ctx.post_item(&job->done_item_.item);
            break;
        case state::running:
            if (!job->keep_late_result_ && !job->dropped_) {
                job->dropped_ = true;
                ++s.cancelled;
            }
            break;
        default:
            break;  // done, or cancelled already
    }
}

thread_pool::thread_pool(context& ctx) : s_(std::make_unique<state>(ctx)) {}

thread_pool::~thread_pool() {
    std::vector<pool_job*> dropped;
    {
        std::unique_lock lock(s_->mutex);
        s_->shutting_down = true;
        s_->work_cv.notify_all();
        s_->exit_cv.wait(lock, [this] { return s_->threads == 0; });
        for (pool_job* job = s_->live; job; job = job->next_) dropped.push_back(job);
    }
    std::vector<std::thread> threads;
    {
        const std::lock_guard lock(s_->mutex);
        threads = s_->reap();
    }
    state::join(std::move(threads));
    // Queued jobs, and finished ones whose items the dying context will never run.
    for (pool_job* job : dropped) s_->free(job);
}

void thread_pool::set_limits(int min_threads, int max_threads) {
    if (min_threads < 0 || max_threads < 1 || min_threads > max_threads) {
        throw error(EINVAL, "thread_pool::set_limits(" + std::to_string(min_threads) + ", " +
                                std::to_string(max_threads) +
                                "): need 0 <= min <= max and max >= 1");
    }
    std::vector<std::thread> exited;
    {
        const std::lock_guard lock(s_->mutex);
        s_->min_threads = min_threads;
        s_->max_threads = max_threads;
        while (s_->threads < min_threads && s_->spawn()) {
        }
        s_->work_cv.notify_all();  // surplus workers retire; idle ones re-check
        exited = s_->reap();
    }
    state::join(std::move(exited));
}

void thread_pool::set_idle_timeout(std::chrono::milliseconds timeout) {
    const std::lock_guard lock(s_->mutex);
    s_->idle_timeout = std::max(timeout, std::chrono::milliseconds(0));
    s_->work_cv.notify_all();
}

void thread_pool::submit_job(std::unique_ptr<pool_job> owned, std::stop_token stop,
                             std::stop_token stop2) {
    if (!s_->ctx.is_home_thread()) {
        std::fprintf(stderr, "corio: thread_pool::submit outside the home thread of '%s'\n",
                     s_->ctx.name().c_str());
        std::abort();
    }
    pool_job* job = owned.release();
    job->pool_ = this;
    job->done_item_.job = job;
    job->done_item_.item.run = [](work_item* w) {
        pool_job* j = job_of(w);
        state& s = *j->pool_->s_;
        struct free_on_exit {
            state& s;
            pool_job* j;
            ~free_on_exit() { s.free(j); }
        } guard{s, j};
        j->stop_.reset();  // no stop callback runs from here on
        j->stop2_.reset();
        j->complete(j->state_ == pool_job::state::cancelled || j->dropped_);
    };
    {
        const std::lock_guard lock(s_->mutex);
        s_->link(job);
    }
    // The stop callbacks are registered before any worker can see the job: registered after
    // it, a request made while the job ran (or even before it started) went unseen when the
    // worker finished first, and the work ran and delivered its value anyway. A token stopped
    // already runs its callback right here, which cancels the job.
    if (stop.stop_possible()) job->stop_.emplace(std::move(stop), pool_job::on_stop{job});
    if (stop2.stop_possible()) job->stop2_.emplace(std::move(stop2), pool_job::on_stop{job});
    std::vector<std::thread> exited;
    bool no_worker = false;
    {
        const std::lock_guard lock(s_->mutex);
        if (job->state_ == pool_job::state::cancelled) {  // never queued, never run
            s_->ctx.post_item(&job->done_item_.item);
            return;
        }
        job->state_ = pool_job::state::queued;
        s_->enqueue(job);
        if (s_->queued > static_cast<std::size_t>(s_->idle) && s_->starting == 0 &&
            s_->threads < s_->max_threads && !s_->spawn() && s_->threads == 0) {
            s_->unqueue(job);
            job->state_ = pool_job::state::cancelled;  // a stop callback leaves it alone now
            no_worker = true;
        } else {
            s_->work_cv.notify_one();
            exited = s_->reap();
        }
    }
    if (no_worker) {
        s_->free(job);  // unregisters the stop callbacks, outside the mutex they take
        throw error(EAGAIN, "thread_pool: cannot start a worker thread");
    }
    state::join(std::move(exited));
}

thread_pool_stats thread_pool::stats() const noexcept {
    const std::lock_guard lock(s_->mutex);
    return {s_->min_threads, s_->max_threads, s_->threads,   s_->idle,
            s_->queued,      s_->running,     s_->completed, s_->cancelled};
}

}  // namespace corio
