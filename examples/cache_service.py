"""The asyncio cache service lives in the installed package: ``replay.examples.cache_service``.

This module is that module under the clone's ``examples`` name (one module
object, so its functions and classes are the very same).
"""

import sys

from replay.examples import cache_service

sys.modules[__name__] = cache_service
