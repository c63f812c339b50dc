"""The project's one git helper: the few git operations tracking (a run's commit), the registry,
record and rollback need (plain ``git`` subprocesses; the DVC ones are :mod:`elmo.dvcrepo`).

Rollback never runs ``git checkout``: it reads file contents from a commit (``git show``) and
writes them into the working tree, so the index, HEAD and every other file stay as they were.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from elmo.errors import StageError

_TIMEOUT_S = 60


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise StageError("git is not installed (needed to trace and restore model versions)") from None
    except subprocess.TimeoutExpired:
        raise StageError(f"git {' '.join(args)}: no answer within {_TIMEOUT_S}s in {root}") from None
    if check and proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()
        raise StageError(f"git {' '.join(args)} failed in {root}: {msg}")
    return proc


def _out(root: Path, *args: str) -> str:
    return git(root, *args).stdout.decode("utf-8").strip()


def is_repo(root: Path) -> bool:
    return git(root, "rev-parse", "--is-inside-work-tree", check=False).returncode == 0


def head(root: Path) -> str | None:
    proc = git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def resolve(root: Path, rev: str) -> str | None:
    """Full commit id of ``rev`` (branch, tag, short or full sha, HEAD~2, …), or None."""
    if rev.startswith("-"):
        return None
    proc = git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def show(root: Path, commit: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``commit``, or None if the commit does not have it."""
    proc = git(root, "show", f"{commit}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def tracked_files(root: Path, commit: str) -> list[str]:
    return _out(root, "ls-tree", "-r", "--name-only", "--full-tree", commit).splitlines()


def commits_touching(root: Path, path: str, *, all_refs: bool = False) -> list[str]:
    """Commits that changed ``path``, newest first (HEAD's history, or every ref's)."""
    if head(root) is None:
        return []
    args = ["rev-list", "--all" if all_refs else "HEAD", "--", path]
    return _out(root, *args).splitlines()


def _under(path: str, prefixes: set[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def dirty_files(root: Path, exclude: set[str] = frozenset()) -> list[str]:
    """Tracked files whose working copy differs from HEAD, except those in/under ``exclude``."""
    proc = git(root, "status", "--porcelain", "--untracked-files=no", "-z", check=False)
    if proc.returncode != 0:
        return []
    files = []
    entries = iter(proc.stdout.decode("utf-8", "replace").split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        if "R" in status or "C" in status:
            next(entries, None)  # a rename/copy is followed by its source path
        if not _under(path, exclude):
            files.append(path)
    return sorted(files)


def current_branch(root: Path) -> str | None:
    """The checked-out branch's short name, or None on a detached HEAD."""
    proc = git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def identity_problem(root: Path) -> str | None:
    """Why git could not author a commit here (no user.name/user.email), or None."""
    proc = git(root, "var", "GIT_COMMITTER_IDENT", check=False)
    if proc.returncode == 0:
        proc = git(root, "var", "GIT_AUTHOR_IDENT", check=False)
    return None if proc.returncode == 0 else (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]


def changed_paths(root: Path, paths: list[str]) -> list[str]:
    """Files in/under ``paths`` whose working copy differs from HEAD: modified, deleted, or new and not
    ignored (a directory path covers its files)."""
    if not paths:
        return []
    proc = git(root, "status", "--porcelain", "--untracked-files=all", "--no-renames", "-z", "--", *paths)
    return sorted({entry[3:] for entry in proc.stdout.decode("utf-8", "replace").split("\0") if len(entry) >= 4})


def commit_paths(root: Path, paths: list[str], message: str) -> str:
    """Commit exactly ``paths`` (their working-tree content, deletions included) on the checked-out
    branch; whatever else is staged stays staged and uncommitted (``git commit --only``). Hooks are
    skipped: an unattended run has nobody to answer them. Returns the new commit id."""
    git(root, "add", "--all", "--", *paths)
    git(root, "commit", "--quiet", "--no-verify", "--only", "-m", message, "--", *paths)
    return _out(root, "rev-parse", "HEAD")


def short(commit: str | None) -> str:
    return commit[:8] if commit else "-"
