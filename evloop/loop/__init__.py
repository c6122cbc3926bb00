"""QEMU's util/ event loop: clock, fds, notifiers, timers, BHs, AioContext, main loop.

Knows nothing of simulations, schedulers or replay.
"""
