"""The one adapter to DVC's Python API (the only module that imports ``dvc``/``dvc_data``).

* Opening and locking: :func:`open_repo`, :func:`session` (holds DVC's repo lock), :func:`reload`.
* The stage graph, for the Prefect flows: :func:`stage_order` (a topological sort of DVC's own
  stage graph), :func:`stage_state` (``dvc status`` + the ``dvc.lock`` entry), :func:`remove_outs`.
* Outputs and objects, for register and rollback: :func:`workspace_outputs`,
  :func:`missing_objects`, :func:`fetch`, :func:`checkout`; for a run's record:
  :func:`git_tracked_outputs`, :func:`push`.
* Metrics, for the flows' run summary: :func:`metrics_diff`.

DVC is the one description of the DAG, so nothing here knows the project's stages: the order
respects DVC's graph (ties broken by the order stages appear in dvc.yaml), and a stage's state is
what ``dvc status`` says about it plus its ``dvc.lock`` entry (cmd, dependency and output hashes,
param values). The cache key of a stage (:attr:`StageState.key`) is a hash of that lock entry, and
it exists only when DVC reports the stage up to date, i.e. when the workspace's deps, params and
outs are exactly the ones the lock entry records. So a Prefect cache hit implies a clean
``dvc status``; a stage DVC considers changed never has a key and always runs.

Reading (``workspace_outputs``, ``missing_objects``) takes no repository lock: register runs
inside ``dvc repro``, which holds it. Rollback works inside :func:`session`, which holds the lock
for the whole check-then-change sequence, so no other DVC command can interleave. ``stage_state``
and ``remove_outs`` take the lock briefly. (The flows run DVC's *commands* — ``dvc repro``,
``dvc commit`` — as subprocesses: ``flows/dvc_run.py``.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo.dicts import flatten
from elmo.errors import StageError


@dataclass(frozen=True)
class OutState:
    path: str  # relative to the workspace root
    stage: str
    md5: str
    exists: bool
    changed: bool  # exists and its content differs from dvc.lock


def open_repo(root: str | Path):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    root = Path(root)
    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise StageError(f"{root}: not a DVC repository (run `dvc init` there, or pass the workspace root)") from None


@contextlib.contextmanager
def session(root: Path) -> Iterator[object]:
    """An open repository holding DVC's repo lock (one DVC command per workspace at a time)."""
    from dvc.lock import LockError
    from dvc.repo import lock_repo

    repo = open_repo(root)
    try:
        try:
            ctx = lock_repo(repo)
            ctx.__enter__()
        except LockError:
            raise StageError(f"{root}: another DVC command holds the repository lock "
                             "(a `dvc repro`?); try again when it has finished") from None
        try:
            yield repo
        finally:
            ctx.__exit__(None, None, None)
    finally:
        repo.close()


def reload(repo) -> None:
    """Forget what DVC read from dvc.yaml/dvc.lock/params (after rollback rewrote them)."""
    repo._reset()  # what lock_repo itself does; the pinned DVC's way to re-read


# --- the stage graph (the Prefect flows) ---------------------------------------------------------

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


def address(stage: Any) -> str:
    """The stage's name as ``dvc repro`` takes it in the workspace root (``dvc.yaml`` there:
    just the name; a dvc.yaml elsewhere: ``sub/dvc.yaml:name``). DVC's own ``addressing`` is
    relative to the current directory, which need not be the workspace."""
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

    repo = open_repo(root)
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

    repo = open_repo(root)
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

    repo = open_repo(root)
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


# --- outputs and objects (register, rollback) ----------------------------------------------------

def _rel(repo, out) -> str:
    return os.path.relpath(out.fs_path, repo.root_dir).replace(os.sep, "/")


def workspace_outputs(repo, stages: set[str] | None = None) -> list[OutState]:
    """Cached outputs of the workspace's dvc.yaml/dvc.lock, each compared with its locked hash."""
    states = []
    for out in repo.index.outs:
        if not out.use_cache or (stages is not None and out.stage.name not in stages):
            continue
        exists = out.exists
        changed = bool(exists and out.hash_info and out.changed_checksum())
        states.append(OutState(_rel(repo, out), out.stage.name, out.hash_info.value or "", exists, changed))
    return states


def repro(root: str | Path) -> None:
    """``dvc repro`` of the whole pipeline in ``root`` as a subprocess (its output is the user's), with
    this interpreter's bin/ first on PATH so the stages' ``elmo`` is this installation's."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    rc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env).returncode
    if rc == 130 or rc < 0:
        raise KeyboardInterrupt
    if rc != 0:
        raise StageError(f"dvc repro failed in {root} (exit {rc}; its own message is above); nothing was recorded")


def git_tracked_outputs(root: str | Path) -> list[str]:
    """Paths of the outputs DVC leaves to git (``cache: false``: metrics, plots, reports), relative
    to the workspace root; files or directories."""
    repo = open_repo(root)
    try:
        return sorted({_rel(repo, out) for out in repo.index.outs if not out.use_cache})
    finally:
        repo.close()


def default_remote_of(root: str | Path) -> str | None:
    """The workspace's default DVC remote (``core.remote``), or None."""
    repo = open_repo(root)
    try:
        return default_remote(repo)
    finally:
        repo.close()


def push(root: str | Path) -> dict[str, Any]:
    """``dvc push`` of the workspace's cached outputs to the default remote; {"remote", "pushed"}.

    Raises :class:`StageError` when no default remote is configured or the push fails."""
    from dvc.exceptions import DvcException

    with session(Path(root)) as repo:
        remote = default_remote(repo)
        if not remote:
            raise StageError(f"{root}: no default DVC remote to push to (`dvc remote add -d NAME PATH`, or set "
                             "flows.record.push: false)")
        try:
            pushed = repo.push()
        except DvcException as err:
            raise StageError(f"dvc push to remote {remote!r} failed: {err}") from None
    return {"remote": remote, "pushed": int(pushed or 0)}


def _object_missing(odb, hash_info) -> bool:
    from dvc_data.hashfile.tree import Tree

    if not hash_info or not hash_info.value or not odb.exists(hash_info.value):
        return True
    if hash_info.isdir:
        try:
            tree = Tree.load(odb, hash_info)
        except Exception:  # an unreadable .dir object counts as missing
            return True
        return any(not odb.exists(hi.value) for _key, _meta, hi in tree)
    return False


def missing_objects(repo, commit: str) -> list[str]:
    """Cached outputs recorded at ``commit`` whose objects (or dir members) the local cache lacks."""
    missing = []
    for _rev in repo.brancher(revs=[commit], workspace=False):
        for out in repo.index.outs:
            if out.use_cache and _object_missing(out.cache, out.hash_info):
                missing.append(_rel(repo, out))
    reload(repo)
    return sorted(set(missing))


def default_remote(repo) -> str | None:
    return repo.config["core"].get("remote")


def fetch(repo, commit: str) -> str | None:
    """Fetch ``commit``'s objects from the default remote into the cache; an error text or None.

    Only the cache changes (content-addressed objects); the workspace is not touched.
    """
    from dvc.exceptions import DvcException

    try:
        repo.fetch(revs=[commit], workspace=False)
    except DvcException as err:
        return str(err) or type(err).__name__
    finally:
        reload(repo)
    return None


def checkout(repo) -> dict:
    """``dvc checkout``: make every cached output match the workspace's dvc.lock."""
    from dvc.exceptions import DvcException

    reload(repo)
    try:
        result = repo.checkout()
    except DvcException as err:
        raise StageError(f"dvc checkout failed in {repo.root_dir}: {err}") from None
    return {k: v for k, v in result.items() if k != "stats"}


# --- metrics (the flows' run summary) -------------------------------------------------------------

def metrics_diff(root: str | Path) -> tuple[dict[str, dict[str, dict[str, Any]]], str | None]:
    """DVC metrics of the workspace with their values at HEAD: {file: {metric: {new, old, diff}}}.

    Returns the table and a note when something could not be read (no commit yet, a missing file).
    """
    from dvc.exceptions import DvcException

    note = None
    repo = open_repo(root)
    try:
        try:
            diff = repo.metrics.diff(a_rev="HEAD", all=True).get("diff", {})
        except DvcException as err:  # e.g. a workspace without commits
            note = f"no comparison with git HEAD ({err})"
            diff = {}
            shown = repo.metrics.show().get("", {}).get("data", {})
            for path, entry in shown.items():
                for k, v in flatten(entry.get("data") or {}).items():
                    diff.setdefault(path, {})[k] = {"new": v}
    finally:
        repo.close()
    return diff, note

