"""``replay.hypothesis.simulations``: the hypothesis strategy, at its documented name.

The code lives in ``replay.explore.hypothesis``; this module is the public door
that README and user code import from.
"""

from __future__ import annotations

from .explore.hypothesis import HypothesisChooser, SimulationRun, simulations

__all__ = ["HypothesisChooser", "SimulationRun", "simulations"]
