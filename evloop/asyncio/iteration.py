"""The loop's iteration: asyncio's ``_run_once``, on virtual time, every callback a step.

:func:`iterate` is the only place where :class:`SimEventLoop` calls
callbacks. One iteration keeps asyncio's order:

1. compact the heap when cancelled timers are more than half of it, as
   asyncio does;
2. wait: not at all if a callback is ready, an fd is ready or ``stop()`` was
   called; else drop cancelled timers from the head of the heap (asyncio
   drops them before every wait: only a wait looks at the head, and heap
   keys are unique, so when they go changes no order) and wait until the
   head timer's deadline, or forever. The wait goes
   to the simulation (``SimEventLoop._wait``); a loop alone in its simulation
   advances the clock itself;
3. ready fds: their reader and writer callbacks join the ready queue, oldest
   registration first (a ``READY_FD`` decision when there are several);
4. due timers join the ready queue in deadline order, ties in arm order (a
   ``TIMER_TIE`` decision per group of ties);
5. the callbacks ready at this point run, FIFO (permuted by ``READY_QUEUE``
   decisions in chaos mode); what they schedule waits for the next
   iteration. Each is one step of the simulation.

Run by ``run_forever``, it keeps iterating until ``stop()`` without
returning, so the per-iteration setup (these locals) is paid once per run,
not once per iteration: that is what makes a ``call_soon`` chain faster
than on the stock loop, which also makes a system call per iteration.

The step bookkeeping is ``Simulation._step`` inlined (``_PRIME``, the key
layout, the ring of recent steps, the watched step of checkpoints and of the
exact step limit), used while nothing needs the full one (no log sink, no
fault injector watching steps); keep the two in step.

**A sleep's timer.** ``asyncio.sleep`` arms ``call_later(delay,
futures._set_result_unless_cancelled, future, result)``, which is a Python
frame and a ``Context.run`` around ``future.set_result(result)`` once the
future is known to be pending. The batch calls ``set_result`` itself when
the future is a plain C ``asyncio.Future`` of this loop and still pending:
what runs is the same (its ``set_result`` schedules each done callback with
that callback's own context, never the current one, so the timer's context
changes nothing), the step is the same handle, and any other case (a
subclass, another loop's future, one already done or cancelled) takes the
usual path. ``tests/evloop/test_asyncio_loop.py`` holds the cases side by
side with the stock loop.
"""

from __future__ import annotations

import gc
from asyncio import Future, futures
from heapq import heapify, heappop
from typing import TYPE_CHECKING, Any

from ..machine.chooser import FifoChooser
from ..seams import ChoiceKind, DispatchKind
from .handles import SimTimerHandle

if TYPE_CHECKING:
    from .loop import SimEventLoop

__all__ = ["GC_INTERVAL_STEPS", "NEVER_NS", "iterate"]

#: While the loop runs, the garbage collector runs every this many steps.
GC_INTERVAL_STEPS = 1 << 16
#: The deadline of ``call_at(inf)``: never (a wait for it is a wait forever).
NEVER_NS = 1 << 120

_PRIME = 0x100000001B3  # the simulation's digest prime (stepping.py); keep in step
_MASK64 = (1 << 64) - 1
_MIN_HEAP_FOR_COMPACTION = 100
#: What asyncio.sleep arms its timer with (typeshed does not list it).
_set_result_unless_cancelled = futures._set_result_unless_cancelled  # type: ignore[attr-defined]
_COMPACT_ABOVE = _MIN_HEAP_FOR_COMPACTION // 2
_BH = DispatchKind.BH
_TIMER = DispatchKind.TIMER


def _claim_exit(handle: Any) -> None:
    """A task's step raised SystemExit or KeyboardInterrupt, which ends the run.

    asyncio stores the exception in the task and raises it on; it then reaches
    the run's owner as the run's failure, so it is retrieved: the task must not
    also log "Task exception was never retrieved" when it is collected.
    """
    task = getattr(handle._callback, "__self__", None)
    if isinstance(task, Future) and task.done() and not task.cancelled():
        task.exception()


def _compact(loop: SimEventLoop, heap: list[Any]) -> list[Any]:
    live = []
    for entry in heap:
        if entry[2]._cancelled:
            entry[2]._scheduled = False
        else:
            live.append(entry)
    heapify(live)
    loop._scheduled = live
    loop._timer_cancelled_count = 0
    return live


def _due_timers(loop: SimEventLoop, heap: list[Any], current: int, explore: bool) -> None:
    """Step 4: move the timers due at ``current`` to the ready queue."""
    ready = loop._ready
    while heap and heap[0][0] <= current:
        when_ns, _, handle = heappop(heap)
        if handle._cancelled:
            loop._timer_cancelled_count -= 1
            handle._scheduled = False
            continue
        if explore and heap and heap[0][0] == when_ns:
            ties = [handle]
            while heap and heap[0][0] == when_ns:
                other = heappop(heap)[2]
                if other._cancelled:
                    loop._timer_cancelled_count -= 1
                    other._scheduled = False
                else:
                    ties.append(other)
            if len(ties) > 1:
                ties = loop._choose_order(
                    ChoiceKind.TIMER_TIE, ties, lambda h: f"{h.name} #{h.uid}"
                )
            for tied in ties:
                tied._scheduled = False
                ready.append(tied)
            continue
        handle._scheduled = False
        ready.append(handle)


def iterate(loop: SimEventLoop, many: bool) -> None:
    """One iteration, or (``many``) iterations until ``stop()`` (see the module docstring)."""
    ready = loop._ready
    popleft = ready.popleft
    sel_ready = loop._selector._ready
    sim = loop.sim
    sched = loop._sched
    waiting = sched._waiting
    external = sched._external
    clock = sim.clock
    now = clock._now
    enabled = clock._enabled
    recent = sim._recent
    halt = sim._halt
    observer = sim._dispatch_observer
    thread = sched.current  # the loop runs in one thread of control
    tag = (thread.index << 48) | (loop.uid << 32)
    timer_tag = tag | (_TIMER << 56)
    thread_name = thread.name
    # Fixed while the loop runs: the seams are plugged before any step, and
    # the exact step limit is a watched step like a checkpoint (sim._watch).
    explore = type(sched.chooser) is not FifoChooser
    chaos = loop.chaos
    plain = loop._inline_steps and sim._sink is None
    while True:
        # 1. compaction (cancelled heads go in step 2, where the head matters)
        if loop._timer_cancelled_count > _COMPACT_ABOVE and (
            loop._timer_cancelled_count * 2 > len(loop._scheduled)
        ):
            _compact(loop, loop._scheduled)

        # 2. wait
        if ready or loop._stopping or sel_ready:
            if (waiting or external or sched.stalled) and not sched.hands_back(thread):
                loop._wait(0)  # a preemption point: other threads of control may go first
        else:
            heap = loop._scheduled
            while heap and heap[0][2]._cancelled:
                loop._timer_cancelled_count -= 1
                heappop(heap)[2]._scheduled = False
            if heap:
                head = heap[0][0]
                timeout = -1 if head >= NEVER_NS else head - now[0]
            else:
                timeout = -1
            if timeout > 0 and not (waiting or external or sched.stalled or sched.until_ns):
                # Alone, so nothing can become ready meanwhile: warp to the
                # deadline (VirtualClock.advance, inlined; keep in step).
                now[0] += timeout
                if enabled[1]:
                    now[1] += timeout
                now[2] += timeout
                now[3] += timeout
            elif timeout:
                loop._wait(timeout)

        # 3. ready fds
        if sel_ready:
            events = loop._selector.select(0)
            if explore and len(events) > 1:
                events = loop._choose_order(ChoiceKind.READY_FD, events, lambda e: f"fd {e[0].fd}")
            loop._process_events(events)

        # 4. due timers
        heap = loop._scheduled
        if heap:
            current = now[0]
            if heap[0][0] <= current:
                if explore:
                    _due_timers(loop, heap, current, explore)
                else:  # deadline order, ties in arm order: the heap's own
                    while True:
                        handle = heappop(heap)[2]
                        handle._scheduled = False
                        if handle._cancelled:
                            loop._timer_cancelled_count -= 1
                        else:
                            ready.append(handle)
                        if not heap or heap[0][0] > current:
                            break

        # 5. the batch
        ntodo = len(ready)
        if ntodo:
            if chaos and ntodo > 1:
                batch = [popleft() for _ in range(ntodo)]
                batch = loop._choose_order(
                    ChoiceKind.READY_QUEUE, batch, lambda h: str(getattr(h, "name", "?"))
                )
                ready.extendleft(reversed(batch))
            t = now[0]
            debug = loop._debug
            for _ in range(ntodo):
                handle = popleft()
                if handle._cancelled:
                    continue
                if plain:
                    try:
                        uid = handle.uid
                    except AttributeError:  # a handle the loop did not make
                        uid = 0
                    # Simulation._step, inlined (keep the two in step).
                    sim.steps = steps = sim.steps + 1
                    if type(handle) is SimTimerHandle:
                        sim.digest = ((sim.digest ^ t) * _PRIME + (timer_tag | uid)) & _MASK64
                        if recent is not None:
                            recent.append((steps, t, thread_name, _TIMER, loop, handle))
                    else:
                        sim.digest = ((sim.digest ^ t) * _PRIME + (tag | uid)) & _MASK64
                        if recent is not None:
                            recent.append((steps, t, thread_name, _BH, loop, handle))
                    if steps == sim._watch:
                        sim._at_watch(steps)
                else:
                    observer(_TIMER if type(handle) is SimTimerHandle else _BH, loop, handle)
                if debug:
                    loop._current_handle = handle
                    try:
                        handle._run()
                    except (SystemExit, KeyboardInterrupt):
                        _claim_exit(handle)
                        raise
                    finally:
                        loop._current_handle = None
                else:
                    try:
                        callback = handle._callback
                        if callback is _set_result_unless_cancelled and (
                            type(fut := handle._args[0]) is Future
                            and fut._loop is loop
                            and not fut.done()
                        ):
                            # A sleep's timer (see the module docstring).
                            fut.set_result(handle._args[1])
                        else:
                            handle._context.run(callback, *handle._args)
                    except (SystemExit, KeyboardInterrupt):
                        _claim_exit(handle)
                        raise
                    except BaseException as exc:
                        loop._callback_failed(handle, exc)
                if halt[0]:
                    break
            if sim.steps >= loop._next_gc:
                loop._next_gc = sim.steps + GC_INTERVAL_STEPS
                gc.collect()
        if not many or loop._stopping or halt[0]:
            return
