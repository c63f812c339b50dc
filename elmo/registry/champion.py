"""Whether a new version takes the champion alias: only when it is strictly better."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(metric: str, new_value: float, new_version: int, *, higher_is_better: bool,
           champion_version: int | None, champion_value: float | None) -> Decision:
    """Compare ``new_value`` with the current champion's value of ``metric``.

    Ties keep the champion (a new version must *beat* it). A champion without a recorded value
    (set by hand, say) is never displaced automatically: the alias stays and the reason says why.
    """
    direction = "higher" if higher_is_better else "lower"
    if not math.isfinite(new_value):
        return Decision(False, f"v{new_version} has {metric}={new_value}, not a number; champion unchanged")
    if champion_version is None:
        return Decision(True, f"no champion yet; v{new_version} ({metric}={new_value:.6g}) becomes champion")
    if champion_version == new_version:
        return Decision(False, f"v{new_version} is already champion")
    if champion_value is None or not math.isfinite(champion_value):
        return Decision(False, f"champion v{champion_version} has no recorded {metric}; it stays champion "
                               f"(move it explicitly with `elmo rollback --to`)")
    better = new_value > champion_value if higher_is_better else new_value < champion_value
    if better:
        return Decision(True, f"v{new_version} beats champion v{champion_version} on {metric} "
                              f"({new_value:.6g} vs {champion_value:.6g}, {direction} is better)")
    return Decision(False, f"v{new_version} does not beat champion v{champion_version} on {metric} "
                           f"({new_value:.6g} vs {champion_value:.6g}, {direction} is better); "
                           f"champion stays v{champion_version}")
