"""Exploring orderings and inputs: ``fuzz`` (random and PCT seeds, minimizing),
``hypothesis`` (a hypothesis strategy of simulations, shrunk by hypothesis) and
``systematic`` (every schedule up to K preemptions, depth first).

Importing this package imports none of them, so that ``replay.explore.fuzz``
does not pull in hypothesis; :func:`explore_systematic` and
:class:`SystematicResult` load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .systematic import SystematicResult, explore_systematic

__all__ = ["SystematicResult", "explore_systematic"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'replay.explore' has no attribute {name!r}")
    value = getattr(importlib.import_module(".systematic", __name__), name)
    globals()[name] = value
    return value
