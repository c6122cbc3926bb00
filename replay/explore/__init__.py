"""Exploring orderings and inputs: ``fuzz`` (random and PCT seeds, minimizing) and
``hypothesis`` (a hypothesis strategy of simulations, shrunk by hypothesis).

Importing this package imports neither, so that ``replay.explore.fuzz`` does not
pull in hypothesis.
"""
