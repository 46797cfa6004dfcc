// corio::channel<T> — a bounded FIFO of values between coroutines, on any contexts.
//
// Built like the primitives of sync.hpp: a spinlock-guarded ring buffer plus two wait lists.
// A sender that finds a waiting receiver moves its value straight into the receiver's awaiter;
// a receiver that takes a value from a full buffer refills it from the first waiting sender.
// So values keep their send order, and waiting senders and receivers are served FIFO. Each
// awaiter lives in the awaiting frame; the buffer is allocated once, by the constructor.
#pragma once

#include <corio/result.hpp>
#include <corio/sync.hpp>
#include <corio/task.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace corio {

/// A bounded multi-producer multi-consumer channel. `capacity` values can be buffered; with
/// capacity 0 every send waits for a receiver (rendezvous). send/receive are awaitables for
/// coroutines on any contexts; close(), size() and is_closed() may be called from any thread.
/// Values are moved under an internal spinlock, hence T must be nothrow move constructible.
/// Destroying a channel while coroutines wait on it aborts; buffered values are destroyed.
template <class T>
class channel {
    static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                  "channel<T> moves values under a spinlock: T's move and destructor must be "
                  "noexcept");

public:
    /// Allocates the buffer (throws std::bad_alloc).
    explicit channel(std::size_t capacity)
        : buffer_(capacity ? std::make_unique<std::optional<T>[]>(capacity) : nullptr),
          capacity_(capacity) {}
    ~channel() {
        if (!senders_.empty() || !receivers_.empty()) {
            detail::misuse("channel destroyed while coroutines wait on it");
        }
    }
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;

    class [[nodiscard]] send_op : detail::cancellable_wait {
    public:
        send_op(channel& ch, T value, std::stop_token stop) noexcept
            : cancellable_wait(std::move(stop)), channel_(ch), value_(std::move(value)) {}
        send_op(const send_op&) = delete;
        send_op& operator=(const send_op&) = delete;
        bool await_ready() noexcept { return stopped_before_start(); }
        bool await_suspend(std::coroutine_handle<> h) noexcept {
            bind(h, "channel::send");
            return channel_.send_or_wait(*this);
        }
        /// EPIPE: the channel is closed (the value was not sent); ECANCELED: stopped first.
        result<void> await_resume() noexcept { return void_outcome(); }

    private:
        friend class channel;
        channel& channel_;
        T value_;
    };

    class [[nodiscard]] receive_op : detail::cancellable_wait {
    public:
        receive_op(channel& ch, std::stop_token stop) noexcept
            : cancellable_wait(std::move(stop)), channel_(ch) {}
        receive_op(const receive_op&) = delete;
        receive_op& operator=(const receive_op&) = delete;
        bool await_ready() noexcept { return stopped_before_start(); }
        bool await_suspend(std::coroutine_handle<> h) noexcept {
            bind(h, "channel::receive");
            return channel_.receive_or_wait(*this);
        }
        /// The next value; EPIPE once the channel is closed and drained; ECANCELED: stopped.
        result<T> await_resume() noexcept {
            if (const int e = outcome()) return result<T>::from_errno(e);
            return result<T>(std::move(*slot_));
        }

    private:
        friend class channel;
        channel& channel_;
        std::optional<T> slot_;  // filled under the channel's lock before the wake
    };

    /// `co_await ch.send(value[, stop])`: buffers `value`, or hands it to a waiting receiver,
    /// or waits (FIFO among senders) until there is room. EPIPE if the channel is closed when
    /// sending or while waiting; ECANCELED if `stop` is requested first (from any thread). On
    /// an error the value is not in the channel.
    send_op send(T value, std::stop_token stop = {}) noexcept {
        return send_op(*this, std::move(value), std::move(stop));
    }
    /// `co_await ch.receive([stop])`: the oldest value, waiting (FIFO among receivers) while
    /// the channel is empty. After close() the buffered values are still delivered, then every
    /// receive returns EPIPE. ECANCELED if `stop` is requested first.
    receive_op receive(std::stop_token stop = {}) noexcept {
        return receive_op(*this, std::move(stop));
    }
    /// Closes the channel: waiting senders and receivers resume with EPIPE; later sends fail
    /// with EPIPE; buffered values stay receivable. Idempotent; any thread.
    void close() noexcept {
        detail::wake_batch batch;
        {
            detail::spin_guard g(lock_);
            if (closed_) return;
            closed_ = true;
            // With anything buffered nobody receives-waits; with room nobody send-waits.
            while (detail::wait_node* n = receivers_.take_first_waiting()) {
                as_receiver(n)->error = EPIPE;
                batch.add(n);
            }
            while (detail::wait_node* n = senders_.take_first_waiting()) {
                as_sender(n)->error = EPIPE;
                batch.add(n);
            }
        }
        batch.wake_all();
    }
    bool is_closed() const noexcept {
        detail::spin_guard g(lock_);
        return closed_;
    }
    /// Values buffered now (a snapshot).
    std::size_t size() const noexcept {
        detail::spin_guard g(lock_);
        return count_;
    }
    std::size_t capacity() const noexcept { return capacity_; }

private:
    static send_op* as_sender(detail::wait_node* n) noexcept {
        return static_cast<send_op*>(static_cast<detail::cancellable_wait*>(n));
    }
    static receive_op* as_receiver(detail::wait_node* n) noexcept {
        return static_cast<receive_op*>(static_cast<detail::cancellable_wait*>(n));
    }

    void push_locked(T&& value) noexcept {
        buffer_[(head_ + count_) % capacity_].emplace(std::move(value));
        ++count_;
    }
    T pop_locked() noexcept {
        std::optional<T>& front = buffer_[head_];
        T value = std::move(*front);
        front.reset();
        head_ = (head_ + 1) % capacity_;
        --count_;
        return value;
    }

    // Both return whether to suspend; the op is bound to its coroutine.
    bool send_or_wait(send_op& op) noexcept {
        detail::wait_node* receiver = nullptr;
        {
            detail::spin_guard g(lock_);
            if (closed_) {
                op.error = EPIPE;
                return false;
            }
            if ((receiver = receivers_.take_first_waiting())) {
                as_receiver(receiver)->slot_.emplace(std::move(op.value_));
            } else if (count_ < capacity_) {
                push_locked(std::move(op.value_));
                return false;
            } else {
                senders_.push_back(&op);
            }
        }
        if (receiver) {
            co_wake(coroutine(receiver->co));
            return false;
        }
        op.arm(&undo_send);
        return true;
    }

    bool receive_or_wait(receive_op& op) noexcept {
        detail::wait_node* sender = nullptr;
        bool queued = false;
        {
            detail::spin_guard g(lock_);
            if (count_ > 0) {
                op.slot_.emplace(pop_locked());
                // Room again: the first waiting sender's value goes to the back of the buffer.
                if ((sender = senders_.take_first_waiting())) {
                    push_locked(std::move(as_sender(sender)->value_));
                }
            } else if ((sender = senders_.take_first_waiting())) {  // capacity 0
                op.slot_.emplace(std::move(as_sender(sender)->value_));
            } else if (closed_) {
                op.error = EPIPE;
                return false;
            } else {
                receivers_.push_back(&op);
                queued = true;
            }
        }
        if (queued) {
            op.arm(&undo_receive);
            return true;
        }
        if (sender) co_wake(coroutine(sender->co));
        return false;
    }

    // A stop request won (the waiter's home thread): unlink the node.
    static void undo_send(void* self) {
        send_op* op = as_sender(static_cast<detail::cancellable_wait*>(self));
        detail::spin_guard g(op->channel_.lock_);
        op->channel_.senders_.remove(op);
    }
    static void undo_receive(void* self) {
        receive_op* op = as_receiver(static_cast<detail::cancellable_wait*>(self));
        detail::spin_guard g(op->channel_.lock_);
        op->channel_.receivers_.remove(op);
    }

    mutable detail::spinlock lock_;
    std::unique_ptr<std::optional<T>[]> buffer_;  // ring of capacity_ slots, guarded by lock_
    const std::size_t capacity_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    bool closed_ = false;
    detail::wait_list senders_;    // wait only while the buffer is full
    detail::wait_list receivers_;  // wait only while the buffer is empty
};

}  // namespace corio
