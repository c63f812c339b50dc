"""A successful pipeline run records itself: one git commit of what it changed, then ``dvc push``.

What a run's record holds — and nothing else, ever — is the pipeline state git keeps:

* ``dvc.lock`` (the hashes of every stage's deps, params and outs: which data and models),
* the params files ``dvc.lock`` names (``params.yaml``, hand edits included: the run used them),
* the outputs DVC leaves to git (``cache: false`` in dvc.yaml: metrics/, plots/, the register report).

Of those, exactly the files that differ from HEAD are committed (``git commit --only``) on the
checked-out branch, so ``git log`` reads as the model's history and ``elmo rollback --to`` finds every
registered version in it. Code or notes left uncommitted stay uncommitted and unchanged; when tracked
code differs from HEAD the message says so (as the registered versions' ``git.dirty`` tag does). The
cached outputs (data, models) then go to the default DVC remote, so a fresh clone can restore them.

The callers (``elmo repro``, the Prefect flows) hold the workspace lock (elmo/workspace_lock.py)
around the run and its record, call :func:`check_recordable` before the first stage (a run that
could not be recorded does not start) and :func:`record_run` only after every stage succeeded: a
failed run records nothing and the previous record stays as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elmo import dvcrepo, gitrepo
from elmo.errors import StageError
from elmo.log import get_logger
from elmo.params.flows import RecordParams
from elmo.registry.lockfile import LOCK_FILE, Lock, parse_lock, read_lock
from elmo.workspace_lock import workspace_lock

log = get_logger("record")


def check_recordable(root: Path, opts: RecordParams) -> None:
    """Refuse (StageError), before the run's first stage, a run whose record could not be made: no git,
    no commit, no branch (or not the one records go on), no git identity, no DVC remote to push to."""
    if not opts.enabled:
        return
    off = "or set flows.record.enabled: false to run without a record"
    if not gitrepo.is_repo(root):
        raise StageError(f"{root}: not a git repository, and a run's record is a git commit (`git init`, {off})")
    if gitrepo.head(root) is None:
        raise StageError(f"{root}: the repository has no commit yet; commit the project first ({off})")
    branch = gitrepo.current_branch(root)
    if branch is None:
        raise StageError(f"{root}: HEAD is detached, so a run's record would be on no branch; check out a branch "
                         f"({off})")
    if opts.branch is not None and branch != opts.branch:
        raise StageError(f"{root}: branch {branch!r} is checked out but records go on {opts.branch!r} "
                         f"(flows.record.branch); check out {opts.branch!r} or change the param")
    problem = gitrepo.identity_problem(root)
    if problem:
        raise StageError(f"{root}: git cannot author the run's record commit ({problem}); set "
                         f"`git config user.name` and `git config user.email` ({off})")
    if opts.push and dvcrepo.default_remote_of(root) is None:
        raise StageError(f"{root}: no default DVC remote to push the run's outputs to (`dvc remote add -d NAME "
                         "PATH`), or set flows.record.push: false")


def record_paths(root: Path, lock: Lock) -> list[str]:
    """The files (and git-tracked output directories) a record may hold."""
    return sorted({LOCK_FILE, "params.yaml", *lock.params_files(), *dvcrepo.git_tracked_outputs(root)})


def stages_changed(before: Lock | None, after: Lock) -> list[str]:
    """Stages whose dvc.lock entry differs from ``before`` (HEAD's), in dvc.lock's order."""
    if before is None:
        return list(after.stages)
    return [name for name, stage in after.stages.items() if before.stages.get(name) != stage]


def _head_lock(root: Path, head: str) -> Lock | None:
    text = gitrepo.show(root, head, LOCK_FILE)
    try:
        return parse_lock(text, f"{LOCK_FILE} at {gitrepo.short(head)}") if text else None
    except StageError:
        return None


def registered(root: Path, report: str) -> list[str]:
    """One line per model of the register report: the version and what the alias did."""
    try:
        data = json.loads((root / report).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    alias = data.get("alias", "champion")
    lines = []
    for m in (data.get("models") or {}).values():
        if not isinstance(m, dict) or "version" not in m:
            continue
        state = "new" if m.get("new") else "already registered"
        if m.get("promoted"):
            prev = m.get("previous_champion")
            moved = f"{alias} moved v{prev} -> v{m['version']}" if prev else f"{alias} -> v{m['version']}"
        else:
            moved = f"{alias} stays v{m.get('champion')}"
        lines.append(f"{m.get('name')} v{m['version']} ({state}; {moved})")
    return lines


def message(run: str, stages: list[str], models: list[str], files: list[str], dirty: list[str]) -> str:
    lines = [f"elmo run: {run}", "",
             f"Stages run: {', '.join(stages) or 'none (every stage was up to date)'}",
             f"Registered: {'; '.join(models) or 'nothing new'}",
             f"Recorded: {', '.join(files)}"]
    if dirty:
        shown = ", ".join(dirty[:20]) + (f" and {len(dirty) - 20} more" if len(dirty) > 20 else "")
        lines.append(f"Uncommitted code changes (git.dirty; not part of this record): {shown}")
    return "\n".join(lines) + "\n"


def record_run(root: Path, opts: RecordParams, run: str, *, register_report: str,
               stages: list[str] | None = None) -> dict[str, Any]:
    """Commit what the run changed among :func:`record_paths`, then push its outputs.

    ``run`` names the run in the commit message (``make pipeline``, ``flow run NAME (ID)``);
    ``stages`` lists the stages that ran (default: those whose dvc.lock entry changed).
    """
    root = Path(root).resolve()
    if not opts.enabled:
        log.info("record: flows.record.enabled is false; this run is not committed")
        return {"recorded": False, "reason": "flows.record.enabled is false"}
    check_recordable(root, opts)
    head = gitrepo.head(root)
    lock = read_lock(root)
    paths = record_paths(root, lock)
    files = gitrepo.changed_paths(root, paths)
    if stages is None:
        stages = stages_changed(_head_lock(root, head), lock)
    dirty = gitrepo.dirty_files(root, exclude=set(paths))
    out: dict[str, Any] = {"recorded": False, "commit": None, "branch": gitrepo.current_branch(root),
                           "files": files, "stages": stages,
                           # what register did in this run (an unchanged report is an earlier run's)
                           "registered": registered(root, register_report) if register_report in files else [],
                           "dirty": dirty, "push": None}
    if files:
        out["commit"] = gitrepo.commit_paths(root, files, message(run, stages, out["registered"], files, dirty))
        out["recorded"] = True
        log.info("record: committed %s on %s: %s", gitrepo.short(out["commit"]), out["branch"], ", ".join(files))
    else:
        log.info("record: the run changed nothing git keeps (dvc.lock, params, metrics, plots); no commit")
    if opts.push:
        out["push"] = dvcrepo.push(root)
        log.info("record: dvc push to %s: %d file(s) sent", out["push"]["remote"], out["push"]["pushed"])
    return out


def repro_and_record(root: Path, opts: RecordParams, run: str, *, lock_timeout_s: float,
                     register_report: str) -> dict[str, Any]:
    """``elmo repro``: under the workspace lock (``flows.lock_timeout_s``), ``dvc repro`` then (only if it
    succeeded) the record (``flows.record``; ``register_report``: register.report)."""
    root = Path(root).resolve()
    with workspace_lock(root, lock_timeout_s, log=log):
        check_recordable(root, opts)
        dvcrepo.repro(root)
        return record_run(root, opts, run, register_report=register_report)
