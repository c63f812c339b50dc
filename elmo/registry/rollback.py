"""``elmo rollback``: list model versions; go back (or forward) to one in a single command.

A target is a registered version (``3`` = version 3 of ``register.primary``; ``elmo-bilm:2``) or
any git revision (``main``, ``HEAD~2``, a sha). A version is traced to the newest commit whose
``dvc.lock`` records exactly its stage's outs and deps (the tags ``dvc.outs``/``dvc.deps``).
Going there means:

1. the pipeline's git-tracked files — ``dvc.yaml``, ``dvc.lock``, the params files ``dvc.lock``
   names, git-tracked outputs such as metrics, and ``*.dvc`` files — are written with their
   content at that commit (HEAD, the index and code files are left alone);
2. ``dvc checkout`` puts the matching data and model files in place, from the cache, after
   fetching what the cache lacks from the default DVC remote;
3. the alias (``champion``) of every declared model points at the version that commit made.

Before changing anything it refuses — and changes nothing — when those files have uncommitted
changes (other than exactly what the previous rollback wrote, so one can roll forward again),
when a cached output differs from ``dvc.lock`` (unsaved work), or when neither the cache nor the
remote holds every object the target needs. ``register.rollback_state`` remembers what the last
rollback wrote; it lives in a self-ignoring folder, never in git.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo import dvcrepo
from elmo.errors import StageError
from elmo.io import atomic_write_bytes, atomic_write_json
from elmo.params import Params
from elmo.params.register import RegisteredModelParams
from elmo.registry import gitrepo, store
from elmo.registry.lockfile import LOCK_FILE, Lock, parse_lock
from elmo.registry.register import norm, say

PIPELINE_FILES = ("dvc.yaml", LOCK_FILE)


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
    stage = lock.stages.get(spec.dvc_stage)
    md5 = stage.outs.get(norm(spec.model_dir)) if stage else None
    matches = [v for v in versions if md5 and v.model_md5 == md5]
    return matches[-1] if matches else None


@dataclass(frozen=True)
class Target:
    commit: str
    label: str
    name: str | None = None  # set when the target is a registered version
    version: int | None = None


def _spec_by_name(params: Params, name: str) -> RegisteredModelParams | None:
    for key, spec in params.register.models.items():
        if name in (key, spec.name):
            return spec
    return None


def resolve_target(root: Path, params: Params, client, history: LockHistory, to: str) -> Target:
    p = params.register
    to = to.strip()
    name, sep, number = to.rpartition(":")
    if not (sep and number.isdigit()):
        name, number = (p.models[p.primary].name, to) if to.isdigit() else ("", "")
    if number:
        spec = _spec_by_name(params, name)
        if spec is None:
            known = ", ".join(s.name for s in p.models.values())
            raise StageError(f"--to {to}: {name!r} is not a registered model of this project ({known})")
        v = store.get(client, spec.name, int(number)) if client is not None else None
        if v is None:
            commit = gitrepo.resolve(root, to) if not sep else None
            if commit:
                return Target(commit, f"git {to} ({gitrepo.short(commit)})")
            if client is None:
                raise StageError(f"--to {to}: no MLflow registry at {params.mlflow.tracking_uri} to look the "
                                 "version up in (mlflow.tracking_uri in params.yaml); a git revision works without one")
            have = ", ".join(str(x.version) for x in store.versions(client, spec.name)) if client else ""
            raise StageError(f"--to {to}: {spec.name} has no version {number} (versions: {have or 'none'})")
        commit = commit_of(history, v)
        if commit is None:
            raise StageError(
                f"--to {to}: no commit's dvc.lock records {spec.name} v{v.version} ({v.tags.get('dvc.model_path')} "
                f"md5 {str(v.model_md5)[:8]}): the pipeline run that made it was never committed "
                "(`git add dvc.lock params.yaml metrics && git commit` after `dvc repro`), so its files "
                "cannot be restored; nothing was changed")
        return Target(commit, f"{spec.name} v{v.version}", spec.name, v.version)
    commit = gitrepo.resolve(root, to)
    if commit is None:
        raise StageError(f"--to {to}: neither a model version ({p.models[p.primary].name} N, or name:N) "
                         "nor a git revision of this repository")
    return Target(commit, f"git {to} ({gitrepo.short(commit)})")


def pipeline_files(root: Path, commit: str, lock: Lock | None) -> set[str]:
    """The git-tracked files that describe the pipeline's state at ``commit``."""
    tracked = gitrepo.tracked_files(root, commit)
    outs = lock.out_paths() if lock else set()
    params_files = lock.params_files() if lock else set()
    wanted = set()
    for f in tracked:
        if (f in PIPELINE_FILES or f in params_files or f.endswith(".dvc")
                or any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs)):
            wanted.add(f)
    return wanted


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _sha(content: bytes | None) -> str | None:
    return hashlib.sha256(content).hexdigest() if content is not None else None


def _put(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    elif _read(path) != content:
        atomic_write_bytes(path, content)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(root: Path, rel: str, state: dict[str, Any]) -> None:
    path = root / rel
    if path.parent != root and not (path.parent / ".gitignore").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / ".gitignore").write_text("# written by `elmo rollback`; never committed\n*\n")
    atomic_write_json(path, state)


def uncommitted(root: Path, head: str, files: set[str], state: dict[str, Any]) -> list[str]:
    """Files whose working copy differs from HEAD, except exactly as the last rollback wrote them."""
    written = state.get("written", {}) if isinstance(state.get("written"), dict) else {}
    dirty = []
    for f in sorted(files):
        current = _read(root / f)
        if current == gitrepo.show(root, head, f):
            continue
        if f in written and written[f] == _sha(current):
            continue
        dirty.append(f)
    return dirty


def _client(params: Params, root: Path):
    from elmo import tracking

    try:
        return tracking.registry_client(params.mlflow, root, create=False)
    except FileNotFoundError:
        return None


def _refuse_unsafe(root: Path, repo, head: str, files: set[str], state_path: Path, label: str) -> None:
    """Refuse when rollback would overwrite work that exists nowhere else."""
    dirty = uncommitted(root, head, files, _load_state(state_path))
    unsaved = [o.path for o in dvcrepo.workspace_outputs(repo) if o.changed]
    if not (dirty or unsaved):
        return
    parts = []
    if dirty:
        parts.append(f"uncommitted changes in {', '.join(dirty)} (commit them, or `git restore` them)")
    if unsaved:
        verb = "differs" if len(unsaved) == 1 else "differ"
        parts.append(f"{', '.join(unsaved)} {verb} from dvc.lock (keep the change with `dvc commit`, "
                     "or discard it with `dvc checkout`)")
    raise StageError(f"refusing to roll back to {label}: {'; '.join(parts)}; nothing was changed")


def _ensure_objects(repo, target: Target) -> None:
    """Every object the target needs is in the cache afterwards (fetched if need be), or refuse."""
    missing = dvcrepo.missing_objects(repo, target.commit)
    remote, fetch_error = dvcrepo.default_remote(repo), None
    if missing and remote:
        say(f"fetching {len(missing)} output(s) of {target.label} from DVC remote {remote!r} …")
        fetch_error = dvcrepo.fetch(repo, target.commit)
        missing = dvcrepo.missing_objects(repo, target.commit)
    if missing:
        where = f"DVC remote {remote!r}" if remote else "a DVC remote (none is configured)"
        detail = f" (fetch: {fetch_error})" if fetch_error else ""
        raise StageError(f"refusing to roll back to {target.label}: the data of {', '.join(missing)} is neither "
                         f"in the DVC cache nor in {where}{detail}; nothing was changed")


def _alias_moves(params: Params, client, target: Target, lock: Lock):
    """(model, version) pairs the alias moves to, and a warning per model it cannot move."""
    p = params.register
    moves: list[tuple[RegisteredModelParams, store.Version]] = []
    warnings: list[str] = []
    for spec in p.models.values():
        if client is None:
            warnings.append(f"{spec.name}: no MLflow registry at {params.mlflow.tracking_uri} "
                            f"(mlflow.tracking_uri); `{p.alias}` not moved")
            continue
        v = version_at(lock, spec, store.versions(client, spec.name))
        if v is not None:
            moves.append((spec, v))
        else:
            warnings.append(f"{spec.name}: no registered version was made from {norm(spec.model_dir)} as "
                            f"recorded at {gitrepo.short(target.commit)}; `{p.alias}` left where it is")
    return moves, warnings


def _restore(root: Path, repo, commit: str, files: set[str]) -> tuple[list[str], dict[str, str | None], dict]:
    """Write the files as ``commit`` has them and check the data out; on any error, put both back."""
    backup = {f: _read(root / f) for f in files}
    written: dict[str, str | None] = {}
    changed: list[str] = []
    try:
        for f in sorted(files):
            content = gitrepo.show(root, commit, f)
            if content != backup[f]:
                _put(root / f, content)
                changed.append(f)
            written[f] = _sha(content)
        return changed, written, dvcrepo.checkout(repo)
    except BaseException:
        for f, content in backup.items():
            _put(root / f, content)
        try:
            dvcrepo.checkout(repo)
        except Exception:  # the original error is the one to report
            pass
        raise


def rollback(params: Params, root: Path, to: str) -> dict[str, Any]:
    """Restore ``to``'s pipeline files, data and models and point the alias at its versions."""
    root = Path(root).resolve()
    p = params.register
    if not gitrepo.is_repo(root):
        raise StageError(f"{root}: not a git repository; rollback restores files from git commits")
    head = gitrepo.head(root)
    if head is None:
        raise StageError(f"{root}: the repository has no commits yet")
    client = _client(params, root)
    history = LockHistory(root)
    target = resolve_target(root, params, client, history, to)
    target_lock = history.at(target.commit)
    if target_lock is None:
        raise StageError(f"{target.label}: that commit has no readable dvc.lock; nothing to restore")
    files = pipeline_files(root, head, history.at(head)) | pipeline_files(root, target.commit, target_lock)

    with dvcrepo.session(root) as repo:
        _refuse_unsafe(root, repo, head, files, root / p.rollback_state, target.label)
        _ensure_objects(repo, target)
        moves, warnings = _alias_moves(params, client, target, target_lock)
        say(f"restoring the pipeline files of {gitrepo.short(target.commit)} and checking out the data and "
            f"models of {target.label} …")
        changed, written, changes = _restore(root, repo, target.commit, files)

    champion: dict[str, Any] = {}
    reason = f"elmo rollback --to {to} ({target.label}, commit {gitrepo.short(target.commit)})"
    for spec, v in moves:
        previous = store.move_alias(client, spec.name, p.alias, v.version, reason)
        champion[spec.name] = {"from": previous, "to": v.version}
        moved = ("stays at" if previous == v.version else "now points at" if previous is None
                 else f"moves from v{previous} to")
        say(f"{spec.name}: `{p.alias}` {moved} v{v.version}")
    for w in warnings:
        say(f"warning: {w}")
    _save_state(root, p.rollback_state, {
        "target": to, "label": target.label, "commit": target.commit, "head": head,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "written": written})
    return {"target": target.label, "commit": target.commit, "restored_files": changed,
            "checkout": changes, "champion": champion, "warnings": warnings}


def list_versions(params: Params, root: Path) -> list[dict[str, Any]]:
    """Every version of every declared model: metrics, commits, data hashes, champion, workspace."""
    from elmo import tracking
    from elmo.registry.lockfile import read_lock

    root = Path(root).resolve()
    p = params.register
    client = tracking.registry_client(params.mlflow, root, create=False)
    history = LockHistory(root) if gitrepo.is_repo(root) else None
    try:
        workspace = read_lock(root)
    except StageError:
        workspace = None
    rows = []
    for spec in p.models.values():
        versions = store.versions(client, spec.name)
        champ = store.by_alias(client, spec.name, p.alias)
        current = version_at(workspace, spec, versions) if workspace else None
        for v in versions:
            rows.append({
                "model": spec.name, "version": v.version,
                "champion": bool(champ and champ.version == v.version),
                "in_workspace": bool(current and current.version == v.version),
                "metric": spec.metric, "value": v.metric(spec.metric),
                "higher_is_better": spec.higher_is_better,
                "metrics": {k[len("metric."):]: float(x) for k, x in v.tags.items() if k.startswith("metric.")},
                "registered": time.strftime("%Y-%m-%d %H:%M", time.localtime(v.created_ms / 1000)),
                "code_commit": v.tags.get("git.commit"), "code_dirty": v.tags.get("git.dirty") == "true",
                "data_commit": commit_of(history, v) if history else None,
                "model_path": v.tags.get("dvc.model_path"), "model_md5": v.model_md5,
                "data": v.json_tag("dvc.data"), "params_md5": v.tags.get("dvc.params_md5"),
                "previous_champion": v.tags.get("champion.previous"),
            })
    return rows


def format_versions(rows: list[dict[str, Any]], params: Params) -> str:
    p = params.register
    lines: list[str] = []
    for spec in p.models.values():
        mine = [r for r in rows if r["model"] == spec.name]
        champ = next((r["version"] for r in mine if r["champion"]), None)
        lines.append(f"{spec.name}  ({p.alias}: {('v' + str(champ)) if champ else 'none'}; "
                     f"{spec.metric}, {'higher' if spec.higher_is_better else 'lower'} is better)")
        if not mine:
            lines.append("  no versions registered yet")
            continue
        header = ["version", p.alias, "workspace", spec.metric, "registered", "code", "data commit", "model md5",
                  "data"]
        table = [header]
        for r in mine:
            value = "-" if r["value"] is None else f"{r['value']:.6g}"
            data = " ".join(f"{k}={str(m)[:8]}" for k, m in sorted(r["data"].items())) or "-"
            code = gitrepo.short(r["code_commit"]) + ("+dirty" if r["code_dirty"] else "")
            table.append([f"v{r['version']}", "*" if r["champion"] else "", "*" if r["in_workspace"] else "",
                          value, r["registered"], code,
                          gitrepo.short(r["data_commit"]) if r["data_commit"] else "not committed",
                          str(r["model_md5"] or "-")[:8], data])
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        for row in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines)
