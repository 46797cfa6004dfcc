// Coroutine synchronization across contexts, one type a header: co_mutex (QEMU's CoMutex),
// co_queue (CoQueue), co_rwlock (CoRwlock), co_event and co_semaphore; wait_list.hpp holds the
// design they share. corio::channel<T> (channel.hpp) is built on the same parts.
#pragma once

#include <corio/co_event.hpp>
#include <corio/co_mutex.hpp>
#include <corio/co_queue.hpp>
#include <corio/co_rwlock.hpp>
#include <corio/co_semaphore.hpp>
