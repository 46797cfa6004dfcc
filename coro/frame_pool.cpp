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

// Set once this thread's cache is destroyed (thread exit): frames freed later, by other
// thread_local destructors, go straight back to the system allocator.
thread_local bool cache_gone = false;

struct frame_cache {
    std::array<free_block*, class_count> heads{};
    std::array<std::size_t, class_count> counts{};

    ~frame_cache() {
        cache_gone = true;
        for (free_block* head : heads) {
            while (head) {
                free_block* next = head->next;
                ::operator delete(head);
                head = next;
            }
        }
    }
};

thread_local frame_cache cache;

std::size_t class_of(std::size_t size) noexcept {
    return (size - 1) / granule;
}

}  // namespace

void* frame_alloc(std::size_t size) {
    if (size == 0 || size > max_pooled) return ::operator new(size);
    const std::size_t c = class_of(size);
    // Whole-class blocks even when not cached: whichever thread frees it may cache it.
    if (cache_gone) return ::operator new((c + 1) * granule);
    if (free_block* block = cache.heads[c]) {
        cache.heads[c] = block->next;
        --cache.counts[c];
        return block;
    }
    return ::operator new((c + 1) * granule);
}

void frame_free(void* frame, std::size_t size) noexcept {
    if (size == 0 || size > max_pooled || cache_gone) {
        ::operator delete(frame);
        return;
    }
    const std::size_t c = class_of(size);
    if (cache.counts[c] >= cache_limit) {
        ::operator delete(frame);
        return;
    }
    auto* block = static_cast<free_block*>(frame);
    block->next = cache.heads[c];
    cache.heads[c] = block;
    ++cache.counts[c];
}

}  // namespace corio::detail
