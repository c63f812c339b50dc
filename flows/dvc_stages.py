"""The DVC side of the flow: the stage order from dvc.yaml and each stage's hashes and status.

DVC is the one description of the DAG, so nothing here knows the project's stages: the order is
a topological sort of DVC's own stage graph (ties broken by the order stages appear in dvc.yaml),
and a stage's state is what ``dvc status`` says about it plus its ``dvc.lock`` entry (cmd,
dependency and output hashes, param values).

The cache key of a stage (:attr:`StageState.key`) is a hash of that lock entry, and it exists only
when DVC reports the stage up to date, i.e. when the workspace's deps, params and outs are exactly
the ones the lock entry records. So a Prefect cache hit implies a clean ``dvc status``; a stage
DVC considers changed never has a key and always runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo.errors import StageError


@dataclass(frozen=True)
class StageState:
    """What DVC says about one stage right now (plain data: safe to log, hash and return)."""

    name: str
    up_to_date: bool
    changes: list[Any] = field(default_factory=list)  # `dvc status` entries; empty when up to date
    lock: dict[str, Any] = field(default_factory=dict)  # the dvc.lock entry as recorded

    @property
    def key(self) -> str | None:
        """Cache key: sha256 of the stage name and its lock entry; None unless up to date."""
        if not self.up_to_date or not self.lock:
            return None
        blob = json.dumps({"stage": self.name, "lock": self.lock}, sort_keys=True, default=str)
        return "dvc-stage-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def outs(self) -> dict[str, str | None]:
        """Output path -> recorded hash (md5, or None when not recorded)."""
        return {o["path"]: o.get("md5") for o in self.lock.get("outs", [])}

    def describe(self) -> str:
        if self.up_to_date:
            return "up to date"
        return json.dumps(self.changes, ensure_ascii=False, sort_keys=True, default=str)


def _open(root: str | Path):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    root = Path(root)
    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise StageError(f"{root}: not a DVC repository (run `dvc init` there, or pass the workspace root)") from None


def address(stage: Any) -> str:
    """The stage's name as ``dvc repro`` takes it in the workspace root (``dvc.yaml`` there:
    just the name; a dvc.yaml elsewhere: ``sub/dvc.yaml:name``). DVC's own ``addressing`` is
    relative to the current directory, which need not be the workspace."""
    import os

    rel = os.path.relpath(stage.path, stage.repo.root_dir)
    name = getattr(stage, "name", None)
    if name is None:  # a .dvc file
        return rel
    return name if rel == "dvc.yaml" else f"{rel}:{name}"


def _plain(obj: Any) -> Any:
    """OrderedDicts and friends -> plain JSON-able structures."""
    return json.loads(json.dumps(obj, default=str))


def stage_order(root: str | Path, targets: list[str] | None = None) -> list[str]:
    """Runnable stages (those with a cmd) in an order that respects every dependency.

    ``targets`` limits the list to those stages and everything upstream of them, as
    ``dvc repro <targets>`` would. Unknown names are an error that lists the stages there are.
    """
    import networkx as nx
    from dvc.exceptions import DvcException

    repo = _open(root)
    try:
        try:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            stages = list(repo.index.stages)
        except DvcException as err:
            raise StageError(f"{Path(root) / 'dvc.yaml'}: {err}") from None
        position = {s: i for i, s in enumerate(stages)}
        by_name = {address(s): s for s in stages if getattr(s, "cmd", None)}
        if targets:
            unknown = [t for t in targets if t not in by_name]
            if unknown:
                raise StageError(
                    f"{Path(root) / 'dvc.yaml'}: no stage named {', '.join(map(repr, unknown))} "
                    f"(stages: {', '.join(by_name) or 'none'})"
                )
            keep: set[Any] = set()
            for t in targets:
                node = by_name[t]
                keep |= {node} | nx.descendants(graph, node)
            graph = graph.subgraph(keep)
        order = nx.lexicographical_topological_sort(graph.reverse(copy=True), key=lambda s: position.get(s, 0))
        return [address(s) for s in order if address(s) in by_name]
    finally:
        repo.close()


def stage_state(root: str | Path, name: str) -> StageState:
    """DVC's status of one stage and its lock entry (takes DVC's repo lock briefly)."""
    from dvc.exceptions import DvcException
    from dvc.stage.serialize import to_single_stage_lockfile

    repo = _open(root)
    try:
        try:
            with repo.lock:
                stage = _by_name(repo, name)
                status = stage.status()
                lock = to_single_stage_lockfile(stage)
        except DvcException as err:
            raise StageError(f"{Path(root)}: {name}: {err}") from None
        changes = _plain(next(iter(status.values()), []))
        return StageState(name=name, up_to_date=not changes, changes=changes, lock=_plain(lock))
    finally:
        repo.close()


def _by_name(repo: Any, name: str) -> Any:
    for stage in repo.index.stages:
        if address(stage) == name:
            return stage
    names = [address(s) for s in repo.index.stages if getattr(s, "cmd", None)]
    raise StageError(f"{Path(repo.root_dir) / 'dvc.yaml'}: no stage named {name!r} (stages: {', '.join(names)})")


def remove_outs(root: str | Path, name: str) -> list[str]:
    """Delete a stage's non-persistent outputs, as ``dvc repro`` does before running a stage."""
    from dvc.exceptions import DvcException

    repo = _open(root)
    try:
        try:
            with repo.lock:
                stage = _by_name(repo, name)
                present = [str(o) for o in stage.outs if not o.persist and o.exists]
                stage.remove_outs(ignore_remove=False, force=False)
        except DvcException as err:
            raise StageError(f"{Path(root)}: {name}: {err}") from None
        return present
    finally:
        repo.close()
