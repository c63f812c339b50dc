"""Which commit made which model version: ``dvc.lock`` through git history.

A registered version carries the ``dvc.lock`` hashes it was made from (tags ``dvc.stage``,
``dvc.outs``, ``dvc.deps``); the commit that made it is the newest whose ``dvc.lock`` records
exactly those (:func:`commit_of`). The other way round, :func:`version_at` is the version a given
``dvc.lock`` made (same model md5).
"""

from __future__ import annotations

import json
from pathlib import Path

from elmo import gitrepo
from elmo.errors import StageError
from elmo.params.register import RegisteredModelParams
from elmo.registry import store
from elmo.registry.lockfile import LOCK_FILE, Lock, parse_lock
from elmo.registry.register import norm


class LockHistory:
    """``dvc.lock`` as recorded by each commit, parsed once; newest commits first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, Lock | None] = {}
        self._commits: list[str] | None = None

    def at(self, commit: str) -> Lock | None:
        if commit not in self._locks:
            text = gitrepo.show(self.root, commit, LOCK_FILE)
            try:
                self._locks[commit] = parse_lock(text, f"{LOCK_FILE} at {gitrepo.short(commit)}") if text else None
            except StageError:
                self._locks[commit] = None  # a broken dvc.lock in history cannot match anything
        return self._locks[commit]

    def commits(self) -> list[str]:
        if self._commits is None:
            mine = gitrepo.commits_touching(self.root, LOCK_FILE)
            others = [c for c in gitrepo.commits_touching(self.root, LOCK_FILE, all_refs=True) if c not in set(mine)]
            self._commits = mine + others
        return self._commits


def lock_matches(lock: Lock | None, v: store.Version) -> bool:
    """Does this dvc.lock record exactly the outs and deps the version was registered from?"""
    if lock is None:
        return False
    stage = lock.stages.get(v.tags.get("dvc.stage", ""))
    outs, deps = v.json_tag("dvc.outs"), v.json_tag("dvc.deps")
    if stage is None or not outs:
        return False
    return (all(stage.outs.get(p) == md5 for p, md5 in outs.items())
            and all(stage.deps.get(p) == md5 for p, md5 in deps.items()))


def commit_of(history: LockHistory, v: store.Version) -> str | None:
    """The newest commit (HEAD's history first, then any ref) whose dvc.lock made ``v``."""
    for commit in history.commits():
        if lock_matches(history.at(commit), v):
            return commit
    return None


def version_at(lock: Lock, spec: RegisteredModelParams, versions: list[store.Version]) -> store.Version | None:
    """The newest of ``versions`` whose model is the one ``lock`` records for ``spec``, if any."""
    stage = lock.stages.get(spec.dvc_stage)
    md5 = stage.outs.get(norm(spec.model_dir)) if stage else None
    matches = [v for v in versions if md5 and v.model_md5 == md5]
    return matches[-1] if matches else None


def champions_at(root: Path, commit: str, report: str) -> dict[str, int]:
    """{registered model name: version} the alias pointed at when ``commit`` was recorded, as the
    register report committed with it says ({} for a commit without a readable report)."""
    raw = gitrepo.show(root, commit, report)
    try:
        models = (json.loads(raw) if raw else {}).get("models") or {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}
    return {m["name"]: int(m["champion"]) for m in models.values()
            if isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("champion"), int)}
