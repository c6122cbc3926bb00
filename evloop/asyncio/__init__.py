"""evloop.asyncio: asyncio programs on a simulation's virtual clock, fds and threads.

``run(main)`` is ``asyncio.run`` on a :class:`SimEventLoop`;
``EventLoopPolicy`` makes every new loop a simulated one. See
``docs/asyncio.md`` for what is supported and what is fenced off.

PYTEST_DONT_REWRITE
"""

from .executor import SimThreadPoolExecutor
from .loop import SimEventLoop
from .runner import EventLoopPolicy, run
from .selector import VirtualSelector

__all__ = ["EventLoopPolicy", "SimEventLoop", "SimThreadPoolExecutor", "VirtualSelector", "run"]
