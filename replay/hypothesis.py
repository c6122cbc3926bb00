"""``replay.hypothesis``: ``run_with`` and the ``simulations`` strategy, at their documented names.

The code lives in ``replay.explore.hypothesis``; this module is the public door
that README and user code import from.
"""

from __future__ import annotations

from .explore.hypothesis import HypothesisChooser, SimulationRun, run_with, simulations

__all__ = ["HypothesisChooser", "SimulationRun", "run_with", "simulations"]
