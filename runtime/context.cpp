// corio::context: construction, the loop iteration (QEMU's aio_poll) and fd handlers.
//
// One iteration: compute the timeout (0 when work is pending); if it may block, announce it
// (notify_me) and re-check every work source; wait in the backend unless there is nothing the
// backend could add; retract notify_me and accept notifications; then dispatch, in QEMU's
// order: backend completions, bottom halves, ready fd handlers, expired timers. Every pending
// queue is context-level, so a callback that runs a nested iteration drains it too, and each
// item is dispatched once.
#include "runtime/detail/loop.hpp"

#include "fdmon/select.hpp"

#include <corio/error.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>

namespace corio::detail {

namespace {

// Innermost context polling on this thread (initial-exec: no __tls_get_addr per iteration).
thread_local context* tls_current __attribute__((tls_model("initial-exec"))) = nullptr;

int open_eventfd() {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) throw error(errno, "eventfd");
    return fd;
}

void drain_eventfd(int fd) noexcept {
    std::uint64_t count;
    while (read(fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
}

// Keeps `tls_current` and the nesting depth right for one iteration, also when a callback
// throws; the outermost iteration frees the fd handlers retired meanwhile.
struct iteration_scope {
    explicit iteration_scope(loop& l) noexcept : l_(l), saved_(tls_current) {
        tls_current = &l_.owner;
        ++l_.depth;
    }
    ~iteration_scope() {
        if (--l_.depth == 0) {
            fd_node** link = &l_.deleted_fds;
            while (fd_node* n = *link) {
                if (n->on_ready_list) {  // a callback threw before the ready list was drained
                    link = &n->deleted_next;
                    continue;
                }
                *link = n->deleted_next;
                l_.free_fd_node(n);
            }
        }
        tls_current = saved_;
    }
    iteration_scope(const iteration_scope&) = delete;
    iteration_scope& operator=(const iteration_scope&) = delete;

private:
    loop& l_;
    context* saved_;
};

// notify_me += 2 for the duration of a wait that may block (home thread is the only writer).
struct announce_scope {
    explicit announce_scope(std::atomic<std::uint32_t>& notify_me) noexcept : nm_(notify_me) {
        nm_.store(nm_.load(std::memory_order_relaxed) + 2, std::memory_order_seq_cst);
    }
    ~announce_scope() {
        nm_.store(nm_.load(std::memory_order_relaxed) - 2, std::memory_order_release);
    }
    announce_scope(const announce_scope&) = delete;
    announce_scope& operator=(const announce_scope&) = delete;

private:
    std::atomic<std::uint32_t>& nm_;
};

}  // namespace

loop::loop(context& o, const context_options& options)
    : owner(o),
      name(options.name),
      home(&thread_token),
      monitor(fdmon::make_monitor(
          {options.backend, options.ring_entries, options.max_batch, options.name})),
      io_uring_backend(monitor->has_io_uring()),
      event_fd(open_eventfd()) {
    if (options.polling.max_ns < 0 || options.polling.grow < 0 || options.polling.shrink < 0) {
        close(event_fd);
        throw error(EINVAL, fmt::format("context '{}': negative poll parameters", name));
    }
    store_poll_params(options.polling);
    notifier_node.fd = event_fd;
    notifier_node.events = POLLIN;
    notifier_node.pollable = true;  // its userspace probe is `notified`
    notifier_node.notifier = true;
    try {
        monitor->update(nullptr, &notifier_node);
    } catch (...) {
        close(event_fd);
        throw;
    }
    items_bh = new bh_node(
        this, [this] { run_items(); }, "post_item", false);
}

void loop::run_items() {
    work_item* top = items.exchange(nullptr, std::memory_order_acq_rel);
    work_item* in_order = nullptr;
    while (top) {  // the stack is newest first: reverse it
        work_item* next = top->next.load(std::memory_order_relaxed);
        top->next.store(in_order, std::memory_order_relaxed);
        in_order = top;
        top = next;
    }
    while (in_order) {
        work_item* item = in_order;
        in_order = item->next.load(std::memory_order_relaxed);
        item->run(item);  // may free or re-post the item: read nothing of it afterwards
    }
}

loop::~loop() {
    destroy(items_bh);  // not in the live registry; freed by the drain below
    {
        std::lock_guard lock(registry_mutex);
        if (live_bhs) {
            std::fprintf(stderr,
                         "corio: context '%s' destroyed while bottom half '%s' is still alive "
                         "(delete every bottom_half before its context)\n",
                         name.c_str(), live_bhs->name);
            std::abort();
        }
    }
    // Every BH left is deleted or a one-shot that never ran. A node on both the local FIFO and
    // the remote stack is freed from the stack only.
    while (!bhs.empty()) {
        bh_node* n = bhs.pop();
        if (!(n->remote.load(std::memory_order_acquire) & bh_node::r_queued)) delete n;
    }
    for (bh_node* n = remote_head.exchange(nullptr, std::memory_order_acquire); n;) {
        bh_node* next = n->remote_next.load(std::memory_order_acquire);
        delete n;
        n = next;
    }
    while (expired_head) disarm(expired_head);
    // Each fd node is either registered (in `fds`) or retired (on `deleted_fds`), never both.
    while (ready.pop()) {
    }
    fds.for_each([this](fd_node* node) {
        monitor->update(node, nullptr);
        delete node;
    });
    for (fd_node* list : {deleted_fds, spare_fds}) {
        while (fd_node* n = list) {
            list = n->deleted_next;
            delete n;
        }
    }
    monitor->update(&notifier_node, nullptr);
    monitor.reset();
    close(event_fd);
}

void loop::fatal(const char* what) const noexcept {
    std::fprintf(stderr, "corio: context '%s': %s\n", name.c_str(), what);
    std::abort();
}

void loop::wrong_thread(const char* what) const noexcept {
    std::fprintf(stderr, "corio: context '%s': %s called off its home thread\n", name.c_str(),
                 what);
    std::abort();
}

bool loop::poll(bool blocking) {
    assert_home("poll");
    iteration_scope scope(*this);
    iterations.bump();

    std::int64_t timeout = blocking ? compute_timeout() : 0;
    // Busy polling applies to iterations that would block, with polling on and no handler or
    // backend state that a probe cannot see.
    const std::int64_t max_ns = poll_max_ns.load(std::memory_order_relaxed);
    const bool adaptive = timeout != 0 && max_ns > 0 && !monitor->need_wait();
    const std::int64_t start = adaptive ? now(clock_type::monotonic) : 0;
    if (adaptive) timeout = busy_poll(timeout, start);
    bool blocked = false;  // waited in the kernel with a non-zero timeout
    {
        std::optional<announce_scope> announced;
        if (timeout != 0) {
            if (adaptive) kicked_at.store(0, std::memory_order_relaxed);
            announced.emplace(notify_me);
            // Re-check every source after announcing: a producer that read notify_me == 0
            // skipped the eventfd write, so its work must be visible now.
            if (notified.load(std::memory_order_seq_cst) || bh_pending()) timeout = 0;
        }
        // Polling mode ends only when the loop is really about to sleep.
        if (timeout != 0 && polling_mode && leave_polling_mode()) timeout = 0;
        // With a zero timeout the backend is skipped when it has nothing to report that
        // userspace cannot see: no user fd handler and nothing the backend needs to do.
        if (timeout != 0 || !fds.empty() || monitor->need_wait()) {
            backend_waits.bump();
            if (timeout != 0) blocking_waits.bump();
            blocked = timeout != 0;
            monitor->wait(ready, timeout);
        }
    }
    if (adaptive) {
        std::int64_t block_ns = now(clock_type::monotonic) - start;
        // Woken by a notification: what polling would have had to cover is the time until it
        // was sent. The rest is the scheduler getting this thread back on a CPU, tens of
        // microseconds in a VM: counted in, one late wake-up would close the window
        // (block_ns > max_ns) and keep it closed, since every later wait also pays it.
        // (QEMU counts the whole blocking time.)
        const std::int64_t kicked = blocked ? kicked_at.load(std::memory_order_relaxed) : 0;
        if (kicked != 0) {
            block_ns = std::clamp<std::int64_t>(kicked - start, 0, block_ns);
        }
        poll_ns.store(
            next_poll_ns(poll_ns.load(std::memory_order_relaxed), block_ns, load_poll_params()),
            std::memory_order_relaxed);
    }
    notify_accept();

    // Each stage is skipped by an inline check when it has nothing to do, which keeps a BH
    // chain's iteration to a few dozen instructions.
    bool progress = monitor->dispatch(ready);
    if (bh_pending()) progress |= bh_poll();
    if (!ready.empty()) progress |= dispatch_ready();
    if (armed_timers != 0 || expired_head) progress |= run_timers();
    return progress;
}

bool loop::dispatch_ready() {
    bool progress = false;
    while (fdmon::handler* h = ready.pop()) {
        auto* n = static_cast<fd_node*>(h);
        const std::uint32_t revents = std::exchange(n->revents, 0);
        const bool poll_hit = std::exchange(n->poll_hit, false);
        if (n->deleted) continue;
        if (n->notifier) {
            wakeups.bump();
            drain_eventfd(event_fd);
            continue;
        }
        const fd_callbacks& cb = n->callbacks;
        // A handler with a probe is polled once it has fired: activity is likely to go on.
        if (cb.poll && !n->on_poll_list) poll_list_add(n);
        if (poll_hit && revents == 0) {
            // Off the poll list during its poll_ready, so a nested iteration neither probes it
            // nor calls it again (unbounded recursion otherwise).
            poll_list_remove(n);
            fd_events.bump();
            progress = true;
            cb.poll_ready(n->opaque);
            if (!n->deleted) poll_list_add(n);
            continue;
        }
        if (cb.read && (revents & (POLLIN | POLLHUP | POLLERR))) {
            fd_events.bump();
            progress = true;
            cb.read(n->opaque);
        }
        // A write-only handler also hears about hang-ups, or a hung-up fd would spin the loop.
        const std::uint32_t write_events = POLLOUT | POLLERR | (cb.read ? 0 : POLLHUP);
        if (!n->deleted && cb.write && (revents & write_events)) {
            fd_events.bump();
            progress = true;
            cb.write(n->opaque);
        }
    }
    return progress;
}

void loop::register_fd(int fd, const fd_callbacks& callbacks, void* opaque, bool must_be_new) {
    assert_home("set_fd_handler");
    const std::uint32_t events = (callbacks.read ? POLLIN : 0) | (callbacks.write ? POLLOUT : 0);
    // The backend's update checks that the fd is open (epoll_ctl does it for free).
    if (fd < 0) bad_fd(fd);
    const bool can_poll = callbacks.poll && callbacks.poll_ready;
    if (!callbacks.read && !callbacks.write && !can_poll) {
        if (fcntl(fd, F_GETFD) < 0) bad_fd(fd);
        throw error(EINVAL, fmt::format("set_fd_handler(fd {}) without read, write or poll", fd));
    }
    fd_node* old_node = fds.find(fd);
    if (old_node && must_be_new) {
        throw error(EEXIST, fmt::format("add_fd_handler(fd {}) on context '{}'", fd, name));
    }
    struct owned {  // back to the spares unless registered
        loop& l;
        fd_node* n;
        ~owned() {
            if (n) l.free_fd_node(n);
        }
        fd_node* release() noexcept { return std::exchange(n, nullptr); }
    } node{*this, new_fd_node()};
    node.n->fd = fd;
    node.n->events = events;
    node.n->pollable = can_poll;
    node.n->once = callbacks.once;
    node.n->callbacks = callbacks;
    if (!can_poll) node.n->callbacks.poll = nullptr;
    node.n->opaque = opaque;
    if (old_node) {
        try {
            monitor->update(old_node, node.n);
        } catch (const error& e) {
            if (e.code().value() == EBADF) bad_fd(fd);
            throw;
        }
        fds.replace(fd, node.release());
        poll_list_remove(old_node);  // the new node joins once it fires
        old_node->deleted = true;
        old_node->deleted_next = deleted_fds;
        deleted_fds = old_node;  // freed by the outermost iteration (it may be mid-dispatch)
        return;
    }
    fds.insert(fd, node.n);
    try {
        monitor->update(nullptr, node.n);
    } catch (const error& e) {
        fds.erase(fd);
        if (e.code().value() == EBADF) bad_fd(fd);
        throw;
    } catch (...) {
        fds.erase(fd);
        throw;
    }
    node.release();
}

fd_node* loop::new_fd_node() {
    fd_node* n = spare_fds;
    if (!n) return new fd_node;
    spare_fds = n->deleted_next;
    --spare_count;
    *n = fd_node{};
    return n;
}

void loop::free_fd_node(fd_node* n) noexcept {
    if (spare_count == max_spare_fds) {
        delete n;
        return;
    }
    n->deleted_next = spare_fds;
    spare_fds = n;
    ++spare_count;
}

void loop::bad_fd(int fd) const {
    throw error(EBADF, fmt::format("set_fd_handler(fd {}) on context '{}'", fd, name));
}

void loop::unregister_fd(int fd) {
    assert_home("remove_fd_handler");
    fd_node* n = fds.find(fd);
    if (!n) {
        throw error(ENOENT, fmt::format("remove_fd_handler(fd {}) on context '{}': not registered",
                                        fd, name));
    }
    fds.erase(fd);
    monitor->update(n, nullptr);
    poll_list_remove(n);
    n->deleted = true;
    if (depth == 0 && !n->on_ready_list) {
        free_fd_node(n);
    } else {
        n->deleted_next = deleted_fds;
        deleted_fds = n;
    }
}

}  // namespace corio::detail

namespace corio {

namespace {

bool is_main_thread() noexcept {
    static const pid_t pid = getpid();
    thread_local const bool main = gettid() == pid;
    return main;
}
}  // namespace

context::context(context_options options)
    : loop_(std::make_unique<detail::loop>(*this, options)),
      has_io_uring_(loop_->io_uring_backend) {}

context::~context() {
    loop_->assert_home("~context");
    while (loop_->keep_alives.load(std::memory_order_acquire) != 0) sched_yield();
    if (loop_->depth != 0) loop_->fatal("destroyed from inside its own poll()");
}

thread_pool& context::pool() {
    loop_->assert_home("context::pool");
    if (!pool_) pool_.reset(new thread_pool(*this));
    return *pool_;
}

const std::string& context::name() const noexcept {
    return loop_->name;
}
backend_kind context::backend() const noexcept {
    return loop_->monitor->kind();
}
bool context::is_home_thread() const noexcept {
    return loop_->on_home_thread();
}

bool context::poll(bool blocking) {
    return loop_->poll(blocking);
}

void context::run() {
    while (!loop_->stop_requested.load(std::memory_order_acquire)) loop_->poll(true);
    loop_->stop_requested.store(false, std::memory_order_relaxed);
}

void context::stop() noexcept {
    // Once the request is visible, run() may return and its caller destroy the context before
    // notify() is done with it (an io_thread does exactly that): keep it alive until then.
    const keep_alive alive(*this);
    loop_->stop_requested.store(true, std::memory_order_release);
    loop_->notify();
}

std::int64_t context::compute_timeout() {
    loop_->assert_home("compute_timeout");
    return loop_->compute_timeout();
}

void context::notify() noexcept {
    loop_->notify();
}

void context::notify_accept() noexcept {
    loop_->assert_home("notify_accept");
    loop_->notify_accept();
}

bottom_half context::make_bh(callback cb, const char* name) {
    return bottom_half(loop_->make_bh(std::move(cb), name, false));
}

void context::post(callback cb, const char* name) {
    // As in post_item: the callback may run, and lead the owner to destroy the context, before
    // schedule() has finished notifying it.
    const keep_alive alive(*this);
    loop_->schedule(loop_->make_bh(std::move(cb), name, true));
}

context::keep_alive::keep_alive(context& ctx) noexcept : loop_(ctx.loop_.get()) {
    loop_->keep_alives.fetch_add(1, std::memory_order_relaxed);
}

context::keep_alive::~keep_alive() {
    loop_->keep_alives.fetch_sub(1, std::memory_order_release);
}

void context::post_item(work_item* item) noexcept {
    // Once pushed, the item may run and lead the owner to destroy the context before the BH
    // below is scheduled: keep it alive until then.
    const keep_alive alive(*this);
    detail::loop& l = *loop_;
    work_item* head = l.items.load(std::memory_order_relaxed);
    do {
        item->next.store(head, std::memory_order_relaxed);
    } while (!l.items.compare_exchange_weak(head, item, std::memory_order_release,
                                            std::memory_order_relaxed));
    l.schedule(l.items_bh);
}

void context::add_fd_handler(int fd, const fd_callbacks& callbacks, void* opaque) {
    loop_->register_fd(fd, callbacks, opaque, true);
}

void context::set_fd_handler(int fd, const fd_callbacks& callbacks, void* opaque) {
    loop_->register_fd(fd, callbacks, opaque, false);
}

void context::remove_fd_handler(int fd) {
    loop_->unregister_fd(fd);
}

bool context::has_fd_handler(int fd) const noexcept {
    return loop_->fds.contains(fd);
}

void context::set_event_notifier(event_notifier& notifier, void (*read)(void*), void* opaque,
                                 bool (*poll)(void*), void (*poll_ready)(void*)) {
    fd_callbacks cb;
    cb.read = read;
    cb.poll = poll;
    cb.poll_ready = poll_ready;
    loop_->register_fd(notifier.fd(), cb, opaque, false);
}

void context::remove_event_notifier(event_notifier& notifier) {
    loop_->unregister_fd(notifier.fd());
}

std::int64_t context::now(clock_type clock) const noexcept {
    return loop_->now(clock);
}

void context::advance_manual_clock(std::chrono::nanoseconds delta) noexcept {
    if (delta.count() <= 0) return;
    const keep_alive alive(*this);  // as in stop(): publish, then notify
    loop_->manual_now.fetch_add(delta.count(), std::memory_order_acq_rel);
    loop_->notify();
}

void context::add_sqe(sqe_prep_fn prep, void* opaque, cqe_handler* handler) {
    loop_->assert_home("add_sqe");
    loop_->monitor->add_sqe(prep, opaque, handler);
}

void context::cancel_sqe(cqe_handler* handler) {
    loop_->assert_home("cancel_sqe");
    loop_->monitor->cancel_sqe(handler);
}

context_stats context::stats() const noexcept {
    const detail::loop& l = *loop_;
    return {l.iterations.get(),   l.backend_waits.get(), l.blocking_waits.get(),
            l.wakeups.get(),      l.bh_runs.get(),       l.fd_events.get(),
            l.timers_fired.get(), l.poll_hits.get(),     l.poll_ns.load(std::memory_order_relaxed)};
}

std::string to_string(const context_stats& s) {
    return fmt::format(
        "iterations={} backend_waits={} blocking_waits={} wakeups={} bh_runs={} fd_events={} "
        "timers_fired={} poll_hits={} poll_ns={}",
        s.iterations, s.backend_waits, s.blocking_waits, s.wakeups, s.bh_runs, s.fd_events,
        s.timers_fired, s.poll_hits, s.poll_ns);
}

context* context::current() noexcept {
    if (context* c = detail::tls_current) return c;
    return is_main_thread() ? &main_context() : nullptr;
}

context& main_context() {
    static context* const main = [] {
        if (!is_main_thread()) {
            std::fputs("corio: main_context() first used off the main thread\n", stderr);
            std::abort();
        }
        context_options options;
        options.name = "main";
        return new context(std::move(options));  // lives as long as the process
    }();
    return *main;
}

}  // namespace corio
