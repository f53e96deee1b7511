"""Negative memories."""

from synco.memory.queue import NegativeQueue

__all__ = ["NegativeQueue"]
