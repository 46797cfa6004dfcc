/*
 * corio's cross-thread notify protocol (notify_me / notified / eventfd), model-checked with
 * SPIN. Run by tests/model/check.sh, which states the configurations and verdicts it expects.
 *
 * Processes, each following the C++ code step by step (the comments quote the code):
 *  - home: the home thread in context::run() -> loop::poll(true) (runtime/context.cpp), with
 *    busy polling (runtime/adaptive_poll.cpp), the bottom-half pass (runtime/bottom_half.cpp)
 *    and SIGNALS signal handlers that interrupt it anywhere to schedule a bottom half (the
 *    home-thread path of loop::schedule, or its remote path while `local_busy` is set);
 *  - producer (PRODUCERS of them): another thread calling bottom_half::schedule() SCHEDULES
 *    times, remote path then loop::notify();
 *  - stopper: another thread calling context::stop(). Its work, stop_requested, is invisible
 *    to poll()'s re-check: only `notified` carries it (as for advance_manual_clock).
 * Every schedule targets one shared bottom half, the demanding case: schedules coalesce, the
 * node can be on the local FIFO and the remote stack at once, and a schedule racing with the
 * pass must still be run (context::post_item schedules one BH from every thread).
 *
 * Memory model: each step is sequentially consistent. That is what the code's full barriers
 * provide where the protocol needs them: the two seq_cst store->load pairs (poll(): notify_me
 * store, `notified` load; notify(): `notified` store, notify_me load) and the fence after
 * notify_accept()'s clear. The other accesses (acquire/release or relaxed in the code) are
 * taken as sequentially consistent too; BUG_RELAXED_ANNOUNCE and BUG_ACCEPT_NO_FENCE show the
 * reorderings those barriers exclude (a store that later loads overtake) and what they break.
 *
 * Properties, checked exhaustively (bounded schedules and signals keep the state space finite):
 *  1. No lost wake-up. When the home thread waits in the backend and nothing else in the whole
 *     system can move (SPIN's `timeout`), it sleeps forever: by then nothing may be pending —
 *     no scheduled bottom half, no stop request, no notify() not yet accepted.
 *  2. No busy loop. Once every other thread is done, the loop is asleep within
 *     QUIET_ITERATIONS iterations (a wake-up that is never consumed would spin it forever).
 *
 * Deliberately broken variants (check.sh requires SPIN to reject each one):
 *  -DBUG_NO_RECHECK       poll() blocks without re-checking `notified` and the BH queues after
 *                         raising notify_me, so a producer that read notify_me == 0 and skipped
 *                         the eventfd write is missed (property 1).
 *  -DBUG_RELAXED_ANNOUNCE notify_me is raised with a release store and re-checked with acquire
 *                         loads: with no full barrier in between the loads may be satisfied
 *                         first, modelled by performing them before the store (QEMU's
 *                         missing seq-cst fence; property 1).
 *  -DBUG_ACCEPT_NO_FENCE  notify_accept() clears `notified` with a seq_cst store and no fence:
 *                         the home thread's later acquire/relaxed loads (stop_requested,
 *                         remote_head) may be satisfied before the clear is visible, so the
 *                         clear can overwrite a notify() whose work those loads missed
 *                         (property 1). A store buffer: the clear is visible to other threads
 *                         only at a flush, at the latest before the next seq_cst store or RMW.
 *  -DBUG_FOREIGN_ACCEPT   another thread runs a non-blocking iteration and accepts and drains
 *                         the notification meant for the sleeping home thread (QEMU's foreign
 *                         aio_poll; corio's poll() aborts off the home thread; property 1).
 *  -DBUG_NO_DRAIN         the eventfd is never drained (property 2).
 * Two historic QEMU mistakes are harmless in this design, and SPIN finds no error with them:
 * -DBUG_LATE_ACCEPT (clear `notified` after dispatching, not before) and -DBUG_SKIP_KICK (a
 * notify() that finds `notified` already set neither stores it nor writes the eventfd). Both
 * are saved by the consumer looking at every work source, and at `notified`, again before it
 * blocks; notifier.cpp keeps the stricter rules anyway.
 */

#ifndef PRODUCERS
#define PRODUCERS 2
#endif
#ifndef SCHEDULES
#define SCHEDULES 1
#endif
#ifndef SIGNALS
#define SIGNALS 0
#endif
#ifndef QUIET_ITERATIONS
#define QUIET_ITERATIONS 3 /* the fewest the correct model needs */
#endif

#ifdef BUG_FOREIGN_ACCEPT
#define THREADS (PRODUCERS + 2) /* the producers, the stopper, the foreign poller */
#else
#define THREADS (PRODUCERS + 1) /* the producers and the stopper */
#endif

/* ---- shared state: detail::loop (runtime/detail/loop.hpp) ---------------------------------- */
byte notify_me;       /* 0, or 2 while poll() may block (no nested blocking poll here) */
bool notified;
bool efd;             /* the eventfd's counter is non-zero: it is readable */
bool stop_requested;
/* The shared bottom half's `remote` bits, and remote_head != nullptr (it is the only node).
   Its home-thread fields and loop::local_busy are locals of `home`. */
bool r_scheduled;
bool r_queued;
bool on_remote_stack;

/* Bookkeeping for property 2, not program state. */
byte threads_done;

/* ---- the other threads' side ---------------------------------------------------------------- */

/* loop::notify() (runtime/notifier.cpp). `last`: this is the thread's last step, recorded with
   it for property 2. */
inline notify(last) {
#ifdef BUG_SKIP_KICK
    if
    :: notified -> threads_done = threads_done + (last)
    :: else ->
#endif
    notified = true;                                   /* notified.store(true, seq_cst) */
    if
    :: notify_me != 0 ->                               /* notify_me.load(seq_cst) != 0 */
        d_step { efd = true; threads_done = threads_done + (last) } /* kick(): write() */
    :: atomic { notify_me == 0 -> threads_done = threads_done + (last) }
    fi
#ifdef BUG_SKIP_KICK
    fi
#endif
}

/* The remote path of loop::schedule (runtime/bottom_half.cpp). */
inline remote_schedule(old, last) {
    /* old = n->remote.fetch_or(r_scheduled | r_queued, acq_rel) */
    d_step { old = r_queued; r_scheduled = true; r_queued = true }
    if
    :: !old -> on_remote_stack = true /* if (!(old & r_queued)) push_remote(): the exchange */
    :: else -> skip
    fi;
    notify(last)
}

active [PRODUCERS] proctype producer() {
    byte i;
    bool old;
    for (i : 1 .. SCHEDULES) {
        remote_schedule(old, i == SCHEDULES)
    }
}

/* context::stop(): stop_requested.store(true, release); notify() */
active proctype stopper() {
    stop_requested = true;
    notify(1)
}

#ifdef BUG_FOREIGN_ACCEPT
/* poll(false) on another thread: notify_accept(), then the zero-timeout wait reports the
   eventfd readable and dispatch_ready() drains it. */
active proctype foreign() {
    bool readable;
    if
    :: notified -> notified = false
    :: else -> skip
    fi;
    readable = efd;
    if
    :: readable -> d_step { efd = false; threads_done++ }
    :: else -> threads_done++
    fi
}
#endif

/* ---- the home thread --------------------------------------------------------------------- */

/*
 * A signal handler calling bottom_half::schedule() on the home thread (loop::schedule). It is
 * expanded inside `home`, so the home thread is frozen while it runs and the others go on.
 */
inline signal_handler() {
    if
    :: !local_busy ->
        /* One step: besides the eventfd write it only touches what the frozen home thread
           owns (notify_me has no other writer). */
        d_step {
            signals_left--;
            /* busy_section: n->scheduled_local = true; if (!n->queued_local) bhs.push(n) */
            scheduled_local = true;
            queued_local = true;
            /* if (notify_me.load(relaxed) != 0) kick(): set only between announcing and waking */
            if
            :: notify_me != 0 -> efd = true
            :: else -> skip
            fi
        }
    :: else ->
        /* it interrupted a local-FIFO edit: the remote path, like another thread */
        signals_left--;
        remote_schedule(sig_old, 0)
    fi
}

#define SIGNAL_POINT                                                                           \
    if                                                                                         \
    :: signals_left > 0 -> signal_handler()                                                    \
    :: true -> skip                                                                            \
    fi

/*
 * notify_accept() (runtime/detail/loop.hpp): if (notified.load(relaxed)) { clear; full fence }.
 * With BUG_ACCEPT_NO_FENCE the clear sits in a store buffer (`clear_buffered`) that the home
 * thread reads through (HOME_SEES_NOTIFIED) and that drains at MAY_FLUSH / MUST_FLUSH points.
 */
#ifdef BUG_ACCEPT_NO_FENCE
#define HOME_SEES_NOTIFIED (notified && !clear_buffered)
#define ACCEPT                                                                                 \
    if                                                                                         \
    :: notified -> clear_buffered = true                                                       \
    :: else -> skip                                                                            \
    fi
#define MAY_FLUSH                                                                              \
    if                                                                                         \
    :: clear_buffered -> d_step { notified = false; clear_buffered = false }                   \
    :: true -> skip                                                                            \
    fi
#define MUST_FLUSH                                                                             \
    if                                                                                         \
    :: clear_buffered -> d_step { notified = false; clear_buffered = false }                   \
    :: else -> skip                                                                            \
    fi
#else
#define HOME_SEES_NOTIFIED notified
#define ACCEPT                                                                                 \
    if                                                                                         \
    :: notified -> notified = false                                                            \
    :: else -> skip                                                                            \
    fi
#define MAY_FLUSH skip
#define MUST_FLUSH skip
#endif

#define bh_pending (queued_local || on_remote_stack) /* loop::bh_pending() */

/* loop::bh_poll() (runtime/bottom_half.cpp) for the one node. */
inline bh_poll() {
    /* take_remote(): remote_head.load(relaxed) != nullptr, then exchange(nullptr), one step
       here since no one else empties the stack */
    if
    :: on_remote_stack ->
        MUST_FLUSH;
        on_remote_stack = false;
        local_busy = true;         /* busy_section busy(l.local_busy) */
        SIGNAL_POINT;
        r_queued = false;          /* n->remote.fetch_and(~r_queued, acq_rel) */
        SIGNAL_POINT;
        queued_local = true;       /* if (!n->queued_local) { n->queued_local = true; push } */
        local_busy = false
    :: else -> skip
    fi;
    /* last = bhs.last_stamp: the node is in this pass iff it is queued now */
    in_pass = queued_local;
    if
    :: in_pass ->
        /* dequeue(): busy_section; bhs.pop(); n->queued_local = false */
        local_busy = true;
        SIGNAL_POINT;
        queued_local = false;
        local_busy = false;
        SIGNAL_POINT;
        d_step { will_run = scheduled_local; scheduled_local = false } /* std::exchange */
        SIGNAL_POINT;
        if
        :: r_scheduled ->          /* n->remote.load(acquire) & r_scheduled */
            MUST_FLUSH;
            r_scheduled = false;   /* n->remote.fetch_and(~r_scheduled, acq_rel) */
            will_run = true
        :: else -> skip
        fi;
        /* if (run) n->cb(): the callback only consumes the work; every schedule it answers
           was cleared above, which is what the final assertion checks */
        will_run = false
    :: else -> skip
    fi
}

active proctype home() {
    bool may_block;       /* poll()'s timeout != 0 (no timers here: else it is -1) */
    bool announced;       /* the announce_scope is engaged */
    bool readable;        /* the backend reported the eventfd readable */
    bool polling_mode;    /* loop::polling_mode */
    bool queued_local;    /* n->queued_local: !bhs.empty() */
    bool scheduled_local; /* n->scheduled_local */
    bool local_busy;      /* loop::local_busy */
    bool in_pass, will_run, sig_old;
    bool clear_buffered;  /* BUG_ACCEPT_NO_FENCE only */
    byte signals_left = SIGNALS;
    byte quiet;           /* iterations since every other thread finished */

    do
    ::
        /* context::run(): while (!stop_requested.load(acquire)) poll(true), then the store of
           false: one step here, as there is one stop() */
        d_step {
            if
            :: threads_done == THREADS && signals_left == 0 ->
                quiet++;
                assert(quiet <= QUIET_ITERATIONS) /* property 2 */
            :: else -> skip
            fi;
            if
            :: stop_requested -> stop_requested = false
            :: else -> skip
            fi
        };
        MAY_FLUSH;
        SIGNAL_POINT;

        /* timeout = compute_timeout(): 0 if bh_pending() */
        may_block = !bh_pending;
        MAY_FLUSH;

        /* busy_poll(): only while the window is open, which any iteration may find shut */
        if
        :: may_block ->
            if
            :: true -> skip            /* poll_max_ns == 0, a window of 0, or need_wait() */
            :: true ->
                polling_mode = true;   /* entering polling mode: poll_begin callbacks */
                /* do { if (probe_once()) return 0; ... } while (elapsed < cap): probe_once
                   loads `notified` (acquire); notify_me is not raised */
                if
                :: HOME_SEES_NOTIFIED -> may_block = false
                :: true -> skip        /* the window ran out */
                fi
            fi
        :: else -> skip
        fi;
        SIGNAL_POINT;

        /* if (timeout != 0) { announced.emplace(notify_me);
                               if (notified.load(seq_cst) || bh_pending()) timeout = 0; } */
        if
        :: may_block ->
#ifdef BUG_RELAXED_ANNOUNCE
            if
            :: HOME_SEES_NOTIFIED -> may_block = false
            :: else ->
                if
                :: bh_pending -> may_block = false
                :: else -> skip
                fi
            fi;
            notify_me = notify_me + 2;
            announced = true;
#else
            MUST_FLUSH;
            /* announce_scope: notify_me.store(notify_me + 2, seq_cst) */
            notify_me = notify_me + 2;
            announced = true;
            SIGNAL_POINT;
#ifndef BUG_NO_RECHECK
            if
            :: HOME_SEES_NOTIFIED -> may_block = false
            :: else ->
                if
                :: bh_pending -> may_block = false /* !bhs.empty() || remote_head (acquire) */
                :: else -> skip
                fi
            fi;
#endif
#endif
            SIGNAL_POINT
        :: else -> skip
        fi;

        /* if (timeout != 0 && polling_mode && leave_polling_mode()) timeout = 0: poll_end
           callbacks, then one last probe_once() */
        if
        :: may_block && polling_mode ->
            polling_mode = false;
            if
            :: HOME_SEES_NOTIFIED -> may_block = false
            :: else -> skip
            fi
        :: else -> skip
        fi;

        /* monitor->wait(ready, timeout) */
        readable = false;
        if
        :: may_block ->
            do
            :: efd -> readable = true; break /* the eventfd is readable: the wait returns */
            :: signals_left > 0 ->
                /* A signal interrupts the wait, which then goes on (returning early instead
                   is an iteration that found nothing: no harder case). */
                signal_handler()
            :: timeout ->
                /* Nothing else can ever happen: the home thread sleeps forever. */
                assert(!r_scheduled && !scheduled_local && !bh_pending && !stop_requested &&
                       !notified); /* property 1 */
                goto asleep
            od
        :: else ->
            if
            :: true -> skip            /* backend skipped: no fd handler, nothing it owes */
            :: true -> readable = efd  /* a zero-timeout wait, for the user's fd handlers */
            fi
        fi;

        /* ~announce_scope: notify_me.store(notify_me - 2, release) */
        if
        :: announced ->
            notify_me = notify_me - 2;
            announced = false
        :: else -> skip
        fi;
        SIGNAL_POINT;
#ifndef BUG_LATE_ACCEPT
        MUST_FLUSH;                    /* an earlier clear is visible before the next one */
        ACCEPT;                        /* notify_accept(), before any work source is read */
        MAY_FLUSH;
#endif
        /* if (bh_pending()) progress |= bh_poll() */
        if
        :: bh_pending -> bh_poll()
        :: else -> skip
        fi;
        MAY_FLUSH;
        /* dispatch_ready(): the notifier node, reported readable, drains the eventfd */
#ifndef BUG_NO_DRAIN
        if
        :: readable -> efd = false     /* drain_eventfd(): read() zeroes the counter */
        :: else -> skip
        fi;
#endif
#ifdef BUG_LATE_ACCEPT
        ACCEPT
#else
        skip
#endif
    od;
asleep:
    skip
}
