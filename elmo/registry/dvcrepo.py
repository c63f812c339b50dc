"""The thin adapter to DVC's Python API for the registry and rollback.

Reading (``workspace_outputs``, ``missing_objects``) takes no repository lock: register runs
inside ``dvc repro``, which holds it. Rollback works inside :func:`session`, which holds the lock
for the whole check-then-change sequence, so no other DVC command can interleave.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from elmo.errors import StageError


@dataclass(frozen=True)
class OutState:
    path: str  # relative to the workspace root
    stage: str
    md5: str
    exists: bool
    changed: bool  # exists and its content differs from dvc.lock


def open_repo(root: Path):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise StageError(f"{root}: not a DVC repository (run `dvc init`)") from None


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
