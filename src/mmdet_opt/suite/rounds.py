"""How many timed rounds a benchmark gets: the suite's count, fewer for a call too slow for it.

Stock's full-image masks and COCO RLE of a 4032x3024 photo take seconds per call; 20 rounds of
each output stage, per case, would make a full GPU run last hours. A benchmark whose rounds would
take more than a budget gets as many as fit, never fewer than MIN_ROUNDS (a median needs a few).
"""
from __future__ import annotations

import math

MIN_ROUNDS = 5


def rounds_within(rounds: int, per_call_s: float | None, budget_s: float) -> int:
    """``rounds``, or as many as fit ``budget_s`` at ``per_call_s`` each, at least
    min(rounds, MIN_ROUNDS). No budget (0) or no measured call: ``rounds``."""
    if not budget_s or not per_call_s or rounds * per_call_s <= budget_s:
        return rounds
    return max(min(rounds, MIN_ROUNDS), math.floor(budget_s / per_call_s))
