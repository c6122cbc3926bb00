"""Scenario modules for the replay tests, importable as ``tests.scenarios.<module>:<function>``.

A trace names its scenario, and a play imports it again by that name, so the
scenarios the replay tests record live in modules of their own rather than in
the test files (which pytest imports under other names).
"""
