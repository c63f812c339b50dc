"""Paths in params.yaml: what a stage writes stays inside the workspace; names are names.

* An output path (a field typed :data:`WorkspacePath`) must be relative to the workspace root and
  must not climb out of it with ``..``. A user who means to write elsewhere (another disk, a shared
  folder) says so explicitly with the top-level ``allow_paths_outside_workspace: true``.
* A file name inside a source (``finetune.task.train_file``) is a name, not a path: no ``/`` or
  ``\\``, not ``.`` or ``..``.

The checks are syntactic (the workspace root is not known while validating): an absolute path is
refused even if it happens to point inside the workspace; write it relative to the root instead.
"""

from __future__ import annotations

import typing
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BaseModel

OPT_IN = "allow_paths_outside_workspace"


class _WorkspacePathMarker:
    def __repr__(self) -> str:
        return "WorkspacePath"


WORKSPACE_PATH = _WorkspacePathMarker()
WorkspacePath = Annotated[str, WORKSPACE_PATH]  # an output path: relative, inside the workspace


def outside_workspace(value: str) -> str | None:
    """Why ``value`` would leave the workspace ("is an absolute path", "climbs out ..."), else None."""
    text = value.replace("\\", "/")
    if PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":") or text.startswith("~"):
        return "is an absolute path"
    depth = 0
    for part in PurePosixPath(text).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return "climbs out of the workspace with '..'"
    return None


def check_file_name(value: str) -> str:
    """A file name inside a source: ValueError for separators, '.', '..' or an empty name."""
    if not value or value.strip() != value:
        raise ValueError("a file name must be non-empty, without leading or trailing spaces")
    if "/" in value or "\\" in value or value in (".", "..") or "\0" in value:
        raise ValueError(f"{value!r} is a path, not a file name inside the source (no '/', '\\', '.' or '..')")
    return value


def _marked(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        return any(m is WORKSPACE_PATH for m in annotation.__metadata__)
    return any(_marked(a) for a in typing.get_args(annotation))


def _is_workspace_path(field) -> bool:
    return any(m is WORKSPACE_PATH for m in field.metadata) or _marked(field.annotation)


def workspace_paths(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) of every :data:`WorkspacePath` field under ``model`` that is set."""
    found: list[tuple[str, str]] = []
    for name, field in type(model).model_fields.items():
        value: Any = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found += workspace_paths(value, key + ".")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    found += workspace_paths(v, f"{key}.{k}.")
        elif isinstance(value, str) and _is_workspace_path(field):
            found.append((key, value))
    return found


def escaping_paths(model: BaseModel) -> list[tuple[str, str, str]]:
    """(dotted key, value, why) of every :data:`WorkspacePath` field under ``model`` that escapes."""
    return [(key, value, why) for key, value in workspace_paths(model) if (why := outside_workspace(value))]
