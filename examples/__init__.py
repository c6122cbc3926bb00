"""Bundled example scenarios for evreplay."""
