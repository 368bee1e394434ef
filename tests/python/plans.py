"""Reading explain output: the stages of a plan tree (`inputStage` / `inputStages`)."""

from __future__ import annotations

from collections.abc import Iterator


def stages(plan: dict) -> Iterator[dict]:
    """Every stage of a plan tree, the root first."""
    stack = [plan]
    while stack:
        stage = stack.pop()
        yield stage
        stack.extend(stage.get("inputStages", [])[::-1])
        if "inputStage" in stage:
            stack.append(stage["inputStage"])


def ixscans(plan: dict) -> list[dict]:
    """The plan's IXSCAN stages."""
    return [s for s in stages(plan) if s.get("stage") == "IXSCAN"]


def ixscan(plan: dict) -> dict | None:
    """The plan's first IXSCAN, if any."""
    return next(iter(ixscans(plan)), None)


def has_stage(plan: dict, name: str) -> bool:
    return any(s.get("stage") == name for s in stages(plan))


def winning_index(explain: dict) -> str | None:
    """The index name of the winning plan's first IXSCAN, if any."""
    scan = ixscan(explain["queryPlanner"]["winningPlan"])
    return scan["indexName"] if scan else None
