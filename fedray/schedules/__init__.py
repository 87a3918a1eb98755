"""Schedules are data: each method yields a list of frozen ``StageSpec`` values that one loop runs.

``spec`` holds the stage value and the rules all methods share; ``methods`` the registry of methods.
"""

from fedray.schedules.methods import METHODS, REFERENCE, Method, build_schedule, method
from fedray.schedules.spec import StageSpec, allocate_rounds, blocks_per_stage, stale_groups

__all__ = ["METHODS", "REFERENCE", "Method", "StageSpec", "allocate_rounds", "blocks_per_stage", "build_schedule",
           "method", "stale_groups"]
