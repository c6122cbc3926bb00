"""Scenarios shipped with evreplay, importable from any directory once it is installed.

``replay.examples.minimachine:scenario`` is the bundled QEMU-like machine
(serial console, RTC, an IOThread block device with an ordering bug, one
vCPU). Traces recorded before it moved here name it
``examples.minimachine:scenario``; :func:`replay.scenario.load_scenario`
still resolves that name, so those traces keep replaying byte for byte.

``replay.examples.cache_service:main`` is an asyncio program (a cache server
over the virtual network whose two clients race into a stale cache), the
README's asyncio tutorial; ``main_fixed`` is the same with the fix.

``replay.examples.wakeups`` holds three wake-up races from QEMU's history
(eabc977973, 21a03d17f2, 924fe1293c) as scenarios with their pre-fix
variants, run with fine preemption, and ``today``, the same actors on
evloop's own loop.
"""

__all__: list[str] = []
