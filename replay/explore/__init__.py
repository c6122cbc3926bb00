"""Exploring orderings and inputs: ``fuzz`` (random and PCT seeds, minimizing),
``hypothesis`` (a hypothesis strategy of simulations, shrunk by hypothesis) and
``systematic`` (every schedule up to K preemptions, depth first), and
``campaign`` (every seed of a scenario on a process pool or a Dask cluster,
failures grouped by signature, one shrunk trace each; ``corpus`` keeps them
across runs).

Importing this package imports none of them, so that ``replay.explore.fuzz``
does not pull in hypothesis; the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .campaign import CampaignResult, run_campaign
    from .seeds import CampaignSpec
    from .systematic import SystematicResult, explore_systematic

__all__ = [
    "CampaignResult", "CampaignSpec", "SystematicResult", "explore_systematic", "run_campaign",
]

_HOMES = {
    "CampaignResult": "campaign", "CampaignSpec": "seeds", "SystematicResult": "systematic",
    "explore_systematic": "systematic", "run_campaign": "campaign",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'replay.explore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value
