// Per-thread recycling of coroutine frames (see task.hpp).
//
// Size classes of 64 bytes up to 2 KiB; a class keeps at most `cache_limit` blocks, so a thread
// that only frees (frames created elsewhere) returns the surplus to the system allocator rather
// than hoarding it. Blocks are plain ::operator new memory, so a frame may be freed on any
// thread. Larger frames go straight to the system allocator.
#include <corio/task.hpp>

#include <array>
#include <new>

namespace corio::detail {
namespace {

constexpr std::size_t granule = 64;
constexpr std::size_t max_pooled = 2048;
constexpr std::size_t class_count = max_pooled / granule;
constexpr std::size_t cache_limit = 256;

struct free_block {
    free_block* next;
};

// Trivially destructible, so reaching it costs no initialisation guard; the blocks it holds
// are freed at thread exit by `cleaner`, registered the first time a block is cached.
struct frame_cache {
    std::array<free_block*, class_count> heads;
    std::array<std::size_t, class_count> counts;
    bool cleanup_registered;
    bool gone;  // the thread is exiting: frames freed now go back to the system allocator
};

// Initial-exec: no __tls_get_addr call per frame when corio is a shared library.
thread_local frame_cache cache __attribute__((tls_model("initial-exec"))) = {};

struct cleaner {
    ~cleaner() {
        cache.gone = true;
        for (free_block*& head : cache.heads) {
            while (head) {
                free_block* next = head->next;
                ::operator delete(head);
                head = next;
            }
        }
    }
};

void register_cleanup() {
    static thread_local cleaner c;  // constructed (and its destructor registered) once per thread
    (void)c;
    cache.cleanup_registered = true;
}

std::size_t class_of(std::size_t size) noexcept {
    return (size - 1) / granule;
}

}  // namespace

void* frame_alloc(std::size_t size) {
    if (size == 0 || size > max_pooled) return ::operator new(size);
    const std::size_t c = class_of(size);
    // Whole-class blocks even when not cached: whichever thread frees it may cache it.
    if (cache.gone) return ::operator new((c + 1) * granule);
    if (free_block* block = cache.heads[c]) {
        cache.heads[c] = block->next;
        --cache.counts[c];
        return block;
    }
    return ::operator new((c + 1) * granule);
}

void frame_free(void* frame, std::size_t size) noexcept {
    if (size == 0 || size > max_pooled || cache.gone) {
        ::operator delete(frame);
        return;
    }
    const std::size_t c = class_of(size);
    if (cache.counts[c] >= cache_limit) {
        ::operator delete(frame);
        return;
    }
    if (!cache.cleanup_registered) [[unlikely]]
        register_cleanup();
    auto* block = static_cast<free_block*>(frame);
    block->next = cache.heads[c];
    cache.heads[c] = block;
    ++cache.counts[c];
}

}  // namespace corio::detail
