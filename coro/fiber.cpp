// Fibers (see fiber.hpp): stack switching, sanitizer annotations and the stack pool.
//
// Switching uses Boost.Context's fcontext layer (make_fcontext / jump_fcontext), the layer its
// fiber and callcc wrappers are built on. The wrappers are not used because they switch stacks
// where we cannot annotate the switch (once when a fiber is created, and when it ends, to free
// the stack from the other side) and keep their control block on the fiber's stack; here every
// switch is one jump_fcontext in resume() or switch_to_caller(), with the annotations around it.
//
// The invariant that makes the rest simple: a fiber always switches back into the resume() call
// that switched it in, on that call's thread and stack. Everything resume() keeps in locals
// (the thread's exception globals, ASan's fake stack, the fiber running before) is therefore
// still valid when the jump returns. Only the fiber side may find itself on another thread
// after a switch (its driver moved), so the fiber side reads no thread-local state after one.
//
// Sanitizers (Debian's Boost.Context has no annotations of its own):
//  - AddressSanitizer must know which stack is current (exceptions thrown on a fiber unpoison
//    "the rest of the stack" through __asan_handle_no_return; fake stacks for use-after-return
//    detection are per stack): __sanitizer_start_switch_fiber before each jump,
//    __sanitizer_finish_switch_fiber after it, on both sides; null fake-stack storage on the
//    fiber's last switch. Stacks are unpoisoned when mapped and when released: frames that never
//    returned (the entry, the last switch) leave poisoned redzones behind.
//  - ThreadSanitizer keeps one context per fiber (__tsan_create_fiber; pooled with the stack)
//    and is told before each jump which one runs next; switches synchronize (flag 0), which is
//    what the driver/fiber hand-over is.
//
// C++ exception state: the runtime keeps a per-thread list of exceptions being handled and a
// count of exceptions in flight (the Itanium ABI's __cxa_eh_globals). A fiber that awaits inside
// a catch block (or in a destructor during unwinding) must not leave its entry on the thread's
// list for others to pop, nor find another's there when it resumes, possibly on another thread.
// So each fiber owns a copy that resume() swaps in and out around the jump.
#include <corio/error.hpp>
#include <corio/fiber.hpp>

#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>
#include <boost/context/detail/fcontext.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORIO_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO_FIBER_TSAN 1
#endif
#endif

#ifdef CORIO_FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORIO_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace corio::detail {
namespace {

namespace fcontext = boost::context::detail;

constexpr std::size_t min_stack_size = 16 * 1024;
// Stacks kept per thread for reuse. Address space, mostly: a cached stack holds only the pages
// its last fiber touched.
constexpr std::size_t cache_limit = 64;

// The fiber whose resume() is innermost on this thread (read only by the code that calls
// resume() and by the fiber's own calls before they switch).
thread_local fiber_base* tls_fiber __attribute__((tls_model("initial-exec"))) = nullptr;

// Thrown into a fiber that is destroyed while suspended; caught by fiber_entry.
struct fiber_unwind {};

std::size_t page_size() noexcept {
    static const auto size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

// ---- the stack pool ------------------------------------------------------------------------

// Written at the top of a cached stack (memory its last fiber touched anyway). Under
// ThreadSanitizer the fiber context goes with the stack: creating one costs TSan a large
// zeroed allocation, and a reused one orders the new fiber after the old, which the hand-over
// through this thread already does.
struct cached_stack {
    cached_stack* next;
    std::size_t mapping_size;
    void* tsan_fiber;
};

// Trivially destructible (no TLS guard); `cleaner` unmaps the cached stacks at thread exit.
struct stack_cache {
    cached_stack* head;
    std::size_t count;
    std::uint64_t maps;
    bool cleanup_registered;
    bool gone;  // the thread is exiting: stacks released now are unmapped
};
thread_local stack_cache stacks __attribute__((tls_model("initial-exec"))) = {};

void unpoison(void* base, std::size_t mapping_size) noexcept {
#ifdef CORIO_FIBER_ASAN
    __asan_unpoison_memory_region(static_cast<char*>(base) + page_size(),
                                  mapping_size - page_size());
#else
    (void)base;
    (void)mapping_size;
#endif
}

void unmap_stack(void* base, std::size_t mapping_size, void* tsan_fiber) noexcept {
#ifdef CORIO_FIBER_TSAN
    if (tsan_fiber) __tsan_destroy_fiber(tsan_fiber);
#else
    (void)tsan_fiber;
#endif
    unpoison(base, mapping_size);
    ::munmap(base, mapping_size);
}

struct cleaner {
    ~cleaner() {
        stacks.gone = true;
        while (cached_stack* s = stacks.head) {
            stacks.head = s->next;
            unmap_stack(reinterpret_cast<char*>(s + 1) - s->mapping_size, s->mapping_size,
                        s->tsan_fiber);
        }
        stacks.count = 0;
    }
};

// A stack of `mapping_size` bytes (guard page included) and, under TSan, its fiber context
// (null if it has none yet).
void* acquire_stack(std::size_t mapping_size, void*& tsan_fiber) {
    for (cached_stack** link = &stacks.head; *link; link = &(*link)->next) {
        cached_stack* s = *link;
        if (s->mapping_size != mapping_size) continue;
        *link = s->next;
        --stacks.count;
        tsan_fiber = s->tsan_fiber;
        return reinterpret_cast<char*>(s + 1) - mapping_size;
    }
    tsan_fiber = nullptr;
    // MAP_NORESERVE: a stack is mostly untouched address space; MAP_STACK for the kernel's
    // benefit (e.g. no transparent huge pages on it).
    void* base = ::mmap(nullptr, mapping_size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        throw error(errno, "mmap(fiber stack of " + std::to_string(mapping_size) + " bytes)");
    }
    if (::mprotect(base, page_size(), PROT_NONE) != 0) {
        const int err = errno;
        ::munmap(base, mapping_size);
        throw error(err, "mprotect(fiber stack guard page)");
    }
    unpoison(base, mapping_size);  // the address range may have been another stack before
    ++stacks.maps;
    return base;
}

void release_to_cache(void* base, std::size_t mapping_size, void* tsan_fiber) noexcept {
    if (stacks.gone || stacks.count >= cache_limit) {
        unmap_stack(base, mapping_size, tsan_fiber);
        return;
    }
    if (!stacks.cleanup_registered) [[unlikely]] {
        static thread_local cleaner c;  // its destructor runs at thread exit
        (void)c;
        stacks.cleanup_registered = true;
    }
    unpoison(base, mapping_size);
    auto* s = reinterpret_cast<cached_stack*>(static_cast<char*>(base) + mapping_size) - 1;
    s->next = stacks.head;
    s->mapping_size = mapping_size;
    s->tsan_fiber = tsan_fiber;
    stacks.head = s;
    ++stacks.count;
}

// ---- switching -----------------------------------------------------------------------------

// The Itanium C++ ABI's per-thread exception state (see the file comment).
struct eh_globals {
    void* caught_exceptions;
    unsigned int uncaught_exceptions;
};

// Cached: the runtime's accessor goes through __tls_get_addr (libstdc++ is a shared library),
// ours is initial-exec. The address is fixed for the thread's lifetime.
thread_local eh_globals* tls_eh_globals __attribute__((tls_model("initial-exec"))) = nullptr;

eh_globals* thread_eh_globals() noexcept {
    if (!tls_eh_globals) [[unlikely]]
        tls_eh_globals = reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
    return tls_eh_globals;
}

// Fiber side, once on the new stack: completes ASan's switch and learns which stack it came
// from (needed to switch back).
void finish_switch_into_fiber(fiber_base* self, void* fake_stack) noexcept {
#ifdef CORIO_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, &self->caller_stack_bottom_,
                                    &self->caller_stack_size_);
#else
    (void)self;
    (void)fake_stack;
#endif
}

[[noreturn]] void fiber_entry(fcontext::transfer_t from) noexcept {
    auto* self = static_cast<fiber_base*>(from.data);
    self->caller_fctx_ = from.fctx;
    finish_switch_into_fiber(self, nullptr);
    try {
        self->body_(self);
    } catch (const fiber_unwind&) {
    } catch (...) {
        self->error_ = std::current_exception();
    }
    self->finished_ = true;
    self->switch_to_caller(true);
    std::abort();  // a finished fiber is never switched into
}

// The fiber_yield() request: the driver parks as corio::suspend does, without an action.
struct park_request : await_request {
    park_request() noexcept : await_request{&park, &nothing, {}} {}
    static std::coroutine_handle<> park(await_request*, std::coroutine_handle<> driver) {
        co_state* self = require_coroutine("fiber_yield");
        self->resume_point = driver;
        return std::noop_coroutine();
    }
    static void nothing(await_request*) noexcept {}
};

}  // namespace

void fiber_base::start() {
    const std::size_t page = page_size();
    mapping_size_ = (stack_size_ + page - 1) / page * page + page;
    stack_base_ = acquire_stack(mapping_size_, tsan_fiber_);
    fctx_ = fcontext::make_fcontext(static_cast<char*>(stack_base_) + mapping_size_,
                                    mapping_size_ - page, &fiber_entry);
#ifdef CORIO_FIBER_TSAN
    if (!tsan_fiber_) tsan_fiber_ = __tsan_create_fiber(0);
    __tsan_set_fiber_name(tsan_fiber_, name_);
#endif
}

await_request* fiber_base::resume() {
    if (!stack_base_) start();
    co_ = current_coroutine();
    request_ = nullptr;
    fiber_base* const outer = tls_fiber;
    tls_fiber = this;
    eh_globals* const eh = thread_eh_globals();
    const eh_globals thread_eh = *eh;
    eh->caught_exceptions = eh_caught_;
    eh->uncaught_exceptions = eh_uncaught_;
#ifdef CORIO_FIBER_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, static_cast<char*>(stack_base_) + page_size(),
                                   mapping_size_ - page_size());
#endif
#ifdef CORIO_FIBER_TSAN
    tsan_caller_ = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(tsan_fiber_, 0);
#endif
    fctx_ = fcontext::jump_fcontext(fctx_, this).fctx;
#ifdef CORIO_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
    eh_caught_ = eh->caught_exceptions;
    eh_uncaught_ = eh->uncaught_exceptions;
    *eh = thread_eh;
    tls_fiber = outer;
    if (finished_) {
        release_stack();
        return nullptr;
    }
    return request_;
}

void fiber_base::switch_to_caller(bool final) {
#ifdef CORIO_FIBER_ASAN
    __sanitizer_start_switch_fiber(final ? nullptr : &asan_fake_stack_, caller_stack_bottom_,
                                   caller_stack_size_);
#else
    (void) final;
#endif
#ifdef CORIO_FIBER_TSAN
    __tsan_switch_to_fiber(tsan_caller_, 0);
#endif
    caller_fctx_ = fcontext::jump_fcontext(caller_fctx_, nullptr).fctx;
    // Possibly on another thread from here on (see the file comment).
    finish_switch_into_fiber(this, asan_fake_stack_);
}

void fiber_base::release_stack() noexcept {
    release_to_cache(stack_base_, mapping_size_, std::exchange(tsan_fiber_, nullptr));
    stack_base_ = nullptr;
    fctx_ = nullptr;
}

void fiber_base::await(await_request& request) {
    if (unwinding_) {
        misuse(
            "a fiber awaited while it was being destroyed: a catch (...) on it swallowed the "
            "unwinding (rethrow it)");
    }
    request_ = &request;
    switch_to_caller(false);
    if (unwinding_) throw fiber_unwind{};
    if (request.error) std::rethrow_exception(request.error);
}

fiber_base::~fiber_base() {
    if (stack_base_ && !finished_) {
        unwinding_ = true;
        resume();  // runs the fiber's destructors; it ends without awaiting again (or aborts)
    }
}

fiber_base* require_fiber(const char* what) noexcept {
    fiber_base* f = tls_fiber;
    if (!f || f->co_ != current_coroutine()) misuse(what);
    return f;
}

void check_fiber_options(const fiber_options& options) noexcept {
    if (options.stack_size < min_stack_size) misuse("fiber_options::stack_size below 16 KiB");
    if (options.stack_size > SIZE_MAX / 4) misuse("fiber_options::stack_size out of range");
}

std::uint64_t fiber_stacks_mapped() noexcept {
    return stacks.maps;
}

}  // namespace corio::detail

namespace corio {

void fiber_yield() {
    detail::fiber_base* self = detail::require_fiber("corio::fiber_yield() used outside a fiber");
    detail::park_request request;
    self->await(request);
}

bool in_fiber() noexcept {
    detail::fiber_base* f = detail::tls_fiber;
    return f && f->co_ == detail::current_coroutine();
}

coroutine current_fiber() noexcept {
    return in_fiber() ? coroutine(detail::tls_fiber->co_) : coroutine();
}

}  // namespace corio
