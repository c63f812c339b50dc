"""The output guard: an output never lands on an input, on the project's own files, or on another output.

Each command that writes declares what it reads and what it writes, one param (or option) each
(:func:`stage_uses`). An output is refused when it

* is, contains or lies inside an input of the same command (a local source, ``bilm_dir``, the task
  data, the file ``elmo embed`` reads, ...);
* is, contains or lies inside ``params.yaml``, ``dvc.yaml``, ``dvc.lock``, ``.git`` or ``.dvc`` (and the
  params file in use);
* is, contains or lies inside another output (of the same stage or of another one: DVC refuses
  overlapping outputs too);
* would replace an existing directory with a file, or a file with a directory (a file output's previous
  version is a file, a directory output's a directory).

Two passes, both before anything is touched: :func:`check_params` on the paths as written (normalised,
so ``a/../.git`` is ``.git``) when params.yaml is validated, so ``elmo params set`` refuses before
rewriting the file and every command refuses a bad file; and :func:`check_stage` / :func:`check_command`
on the filesystem just before a command runs (symlinks resolved, absolute sources, the params file in
use, what already exists at each output). Standard library only (and elmo.sources, elmo.params.base).
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo.errors import ParamsError
from elmo.sources import source_kind

PROTECTED = ("params.yaml", "dvc.yaml", "dvc.lock", ".git", ".dvc")  # at the workspace root
STAGES = ("crawl", "clean", "tokenize", "vocab", "pretrain", "fetch_task", "finetune", "register", "rollback")


class OutputCollision(ParamsError):
    """An output path collides with an input, a project file or another output (exit 2, nothing touched)."""


@dataclass(frozen=True)
class Use:
    """One path a command reads (``kind`` "in") or writes (``kind`` "file" or "dir"), named by its param."""

    key: str  # the param (clean.metrics) or option (--out) that gives it
    path: str  # as given
    kind: str = "in"

    @property
    def output(self) -> bool:
        return self.kind != "in"


def _local(key: str, source: str) -> list[Use]:
    try:
        return [Use(key, source)] if source_kind(source) == "local" else []
    except ValueError:
        return []


def _sqlite_path(uri: str) -> str | None:
    """The database file of a ``sqlite:///`` tracking URI (relative to the workspace, or absolute)."""
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///"):] or None


def _mlflow(params: Any) -> list[Use]:
    m = params.mlflow
    db = _sqlite_path(m.tracking_uri)
    uses = [Use("mlflow.artifact_root", m.artifact_root, "dir")]
    return uses + ([Use("mlflow.tracking_uri", db, "file")] if db else [])


def stage_uses(params: Any, stage: str) -> list[Use]:
    """What ``stage`` reads and writes, by param (``rollback``: what ``elmo rollback`` writes besides
    the files it restores from git)."""
    if stage == "crawl":
        c = params.crawl
        return [*_local("crawl.source", c.source), Use("crawl.out_dir", c.out_dir, "dir")]
    if stage == "clean":
        c = params.clean
        return [Use("clean.in_dir", c.in_dir), Use("clean.out_parquet", c.out_parquet, "file"),
                Use("clean.quarantine", c.quarantine, "file"), Use("clean.metrics", c.metrics, "file")]
    if stage == "tokenize":
        t = params.tokenize
        return [Use("tokenize.in_parquet", t.in_parquet), Use("tokenize.out_dir", t.out_dir, "dir"),
                Use("tokenize.metrics", t.metrics, "file")]
    if stage == "vocab":
        v = params.vocab
        return [Use("vocab.in_dir", v.in_dir), Use("vocab.out_dir", v.out_dir, "dir"),
                Use("vocab.arrays_dir", v.arrays_dir, "dir"), Use("vocab.metrics", v.metrics, "file")]
    if stage == "pretrain":
        p = params.pretrain
        return [Use("pretrain.vocab_dir", p.vocab_dir), Use("pretrain.arrays_dir", p.arrays_dir),
                Use("pretrain.petitions", p.petitions), Use("pretrain.out_dir", p.out_dir, "dir"),
                Use("pretrain.checkpoint_dir", p.checkpoint_dir, "dir"),
                Use("pretrain.metrics", p.metrics, "file"), Use("pretrain.plots_dir", p.plots_dir, "dir"),
                *_mlflow(params)]
    if stage == "fetch_task":
        t = params.finetune.task  # the selected task (finetune.tasks.<name>)
        return [*_local("finetune.task.source", t.source), Use("finetune.task.data_dir", t.data_dir, "dir")]
    if stage == "finetune":
        f = params.finetune
        return [*_local("finetune.task.source", f.task.source), Use("finetune.task.data_dir", f.task.data_dir),
                Use("finetune.bilm_dir", f.bilm_dir), Use("finetune.out_dir", f.out_dir, "dir"),
                Use("finetune.metrics", f.metrics, "file"), Use("finetune.comparison", f.comparison, "file"),
                Use("finetune.comparison_table", f.comparison_table, "file"),
                Use("finetune.plots_dir", f.plots_dir, "dir"), Use("finetune.cache_dir", f.cache_dir, "dir"),
                Use("finetune.adapt.out_dir", f.adapt.out_dir, "dir"), *_mlflow(params)]
    if stage == "register":
        r = params.register
        reads = []
        for name, m in r.models.items():
            reads += [Use(f"register.models.{name}.model_dir", m.model_dir),
                      Use(f"register.models.{name}.metrics_file", m.metrics_file)]
            reads += [Use(f"register.models.{name}.code_paths[{i}]", c) for i, c in enumerate(m.code_paths)]
        return [*reads, Use("register.report", r.report, "file"), *_mlflow(params)]
    if stage == "rollback":
        return [Use("register.rollback_state", params.register.rollback_state, "file")]
    raise KeyError(f"the output guard knows no stage {stage!r} (one of {', '.join(STAGES)})")


# --- comparing paths ----------------------------------------------------------------------------

def _relation(a: tuple[str, ...], b: tuple[str, ...], kind: str = "dir") -> str | None:
    """How path ``a`` (an output of ``kind``) stands to ``b`` ("is the same file as", "lies inside",
    "contains"), or None."""
    if a == b:
        return f"is the same {'directory' if kind == 'dir' else 'file'} as"
    if a[:len(b)] == b:
        return "lies inside"
    if b[:len(a)] == a:
        return "contains"
    return None


def _written(path: str) -> tuple[str, ...] | None:
    """The parts of a path as written, normalised ('a/./b/../c' -> a, c); None for an absolute or
    home path (compared only on the filesystem, where the workspace root is known)."""
    text = path.replace("\\", "/")
    if text.startswith(("/", "~")) or text[1:2] == ":":
        return None
    norm = posixpath.normpath(text)
    return () if norm == "." else tuple(norm.split("/"))


def _first_collision(uses: list[Use], where, protected: list[tuple[str, tuple[str, ...]]],
                     stage_of: dict[str, set[str]], own: set[str] | None = None,
                     first: set[str] = frozenset()) -> str | None:
    """The first collision of an output among ``uses`` (placed by ``where``; only the outputs in ``own``
    when given), as one sentence, or None. Inputs first, then the protected files, then other outputs;
    the keys in ``first`` (those changed from their defaults: what the user just set) lead."""
    placed = sorted(((u, p) for u in uses if (p := where(u)) is not None), key=lambda up: up[0].key not in first)
    subjects = [(u, p) for u, p in placed if u.output and (own is None or u.key in own)]
    for out, o in subjects:
        for other, p in placed:
            shared = stage_of.get(out.key, set()) & stage_of.get(other.key, set())
            if not other.output and shared and (how := _relation(o, p, out.kind)):
                return (f"{out.key} {out.path!r} {how} {other.key} {other.path!r} (an input of "
                        f"{' and '.join(sorted(shared))}): an output never lands on an input; choose another path")
    for out, o in subjects:
        for label, p in protected:
            if how := _relation(o, p, out.kind):
                return (f"{out.key} {out.path!r} {how} {label}: an output never replaces the project's own files "
                        f"({', '.join(PROTECTED)}, the params file); choose another path")
    for out, o in subjects:
        for other, p in placed:
            if other.output and other.key != out.key and (how := _relation(o, p, out.kind)):
                return (f"{out.key} {out.path!r} {how} {other.key} {other.path!r} (another output): two outputs "
                        "never overlap; choose another path")
    return None


def _stage_map(params: Any, stages: Iterable[str]) -> tuple[list[Use], dict[str, set[str]]]:
    uses: dict[str, Use] = {}
    stage_of: dict[str, set[str]] = {}
    for stage in stages:
        for u in stage_uses(params, stage):
            uses.setdefault(u.key, u)
            stage_of.setdefault(u.key, set()).add(stage)
    return list(uses.values()), stage_of


def check_params(params: Any) -> str | None:
    """The first collision between the paths params.yaml gives, as written (no filesystem), or None:
    outputs against the protected names, the inputs of their own stage and every other output."""
    uses, stage_of = _stage_map(params, STAGES)
    defaults = {u.key: u.path for u in _stage_map(_defaults(type(params)), STAGES)[0]}
    changed = {u.key for u in uses if defaults.get(u.key) != u.path}
    protected = [(name, (name,)) for name in PROTECTED]
    return _first_collision(uses, lambda u: _written(u.path), protected, stage_of, first=changed)


@functools.cache
def _defaults(model: type) -> Any:
    return model()


# --- on the filesystem, before a command runs ---------------------------------------------------

def _resolved(root: Path):
    """Where a use lands on the disk: an input, or a directory written into, with every symlink
    resolved; a file (or a directory replaced whole) at a link replaces the link, not its target, so
    only its parent is resolved (an output that is a link into DVC's cache is no collision)."""
    def where(u: Use) -> tuple[str, ...] | None:
        try:
            p = Path(u.path).expanduser()
            p = p if p.is_absolute() else root / p
            if u.output and p.is_symlink() and not p.is_dir():
                return (p.parent.resolve() / p.name).parts
            return p.resolve().parts
        except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop: the stage reports it
            return None
    return where


def _kind_clash(u: Use, root: Path) -> str | None:
    try:
        p = Path(u.path).expanduser()
        p = p if p.is_absolute() else root / p
        p.is_dir()
    except (OSError, ValueError, RuntimeError):
        return None
    if u.kind == "file" and p.is_dir():
        return (f"{u.key} {u.path!r} is an existing directory ({p.resolve()}) and {u.key} is a file: a directory is "
                "never deleted to make room for a file; choose another path or remove it yourself")
    if u.kind == "dir" and p.exists() and not p.is_dir():
        return (f"{u.key} {u.path!r} is an existing file ({p.resolve()}) and {u.key} is a directory: a file is "
                "never deleted to make room for a directory; choose another path or remove it yourself")
    return None


def check_command(command: str, uses: list[Use], root: Path, params_file: str | Path | None = None, *,
                  stage_of: dict[str, set[str]] | None = None, own: set[str] | None = None) -> None:
    """Refuse (:class:`OutputCollision`, one line naming the param or option and the path it collides
    with) an output of ``command`` that collides on the filesystem: with an input, a protected file
    (``params_file`` included), another output, or an existing path of the other kind (file/dir).
    ``own``: the keys that are this command's (default: all of ``uses``); the others are other
    commands' outputs, which its outputs must not overlap either."""
    root = Path(root).resolve()
    where = _resolved(root)
    named = [(name, name) for name in PROTECTED]
    if params_file is not None:
        named.append((f"the params file {str(params_file)!r}", str(params_file)))
    # a protected path that is a link: neither the link nor what it points at
    protected = [(label, p) for label, path in named for kind in ("in", "file") if (p := where(Use(label, path, kind)))]
    stage_of = stage_of if stage_of is not None else {u.key: {command} for u in uses}
    why = _first_collision(uses, where, protected, stage_of, own)
    if why is None:
        why = next((w for u in uses if u.output and (own is None or u.key in own) and (w := _kind_clash(u, root))),
                   None)
    if why:
        raise OutputCollision(f"{command}: {why}")


def check_stage(stage: str, params: Any, root: Path, params_file: str | Path | None = None) -> None:
    """:func:`check_command` for a pipeline stage (or ``rollback``): its own inputs and outputs, and
    every other stage's outputs (which its outputs must not overlap)."""
    everything, stage_of = _stage_map(params, STAGES)
    uses = stage_uses(params, stage)
    own = {u.key for u in uses}
    check_command(stage, uses + [u for u in everything if u.output and u.key not in own], root, params_file,
                  stage_of=stage_of, own=own)


def check_stages(params: Any, root: Path, params_file: str | Path | None = None) -> None:
    """:func:`check_stage` for every stage (what ``elmo params set`` checks before writing)."""
    for stage in STAGES:
        check_stage(stage, params, root, params_file)


def check_replace(command: str, out: Use, root: Path, *, force: bool, ours: Callable[[Path], bool]) -> None:
    """Refuse to replace an existing file at ``out`` that ``ours`` does not recognise as this command's
    previous output, unless ``force`` (``-o`` onto someone's file needs ``--force``)."""
    p = Path(out.path).expanduser()
    p = p if p.is_absolute() else Path(root) / p
    if p.is_file() and not force and not ours(p):
        raise OutputCollision(f"{command}: {out.key} {out.path!r} is an existing file that {command} did not write; "
                              "give --force to replace it, or choose another path")


__all__ = ["OutputCollision", "Use", "PROTECTED", "STAGES", "stage_uses", "check_params", "check_command",
           "check_stage", "check_stages", "check_replace"]
