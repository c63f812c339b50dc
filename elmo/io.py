"""Atomic file output: write to a temporary sibling, fsync, then rename.

A crash never leaves a half-written output: either the old file (or nothing) or the new one.
This is the one place the project does it; stages use these helpers instead of ``open(..., "w")``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elmo.errors import StageError


def _refuse_kind_change(path: Path, new: Path) -> None:
    if new.is_dir() and not path.is_dir() and (path.exists() or path.is_symlink()):
        raise StageError(f"{path}: an existing file; refusing to replace it with a directory (nothing was changed)")
    if not new.is_dir() and path.is_dir() and not path.is_symlink():
        raise StageError(f"{path}: an existing directory; refusing to replace it with a file (nothing was changed)")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Works for files and directories (whatever the body creates at the yielded path). On error the
    temporary is removed and ``path`` is untouched. A directory output replaces the directory at
    ``path`` (its previous version) and a file a file, never one the other: that is a
    :class:`StageError` and ``path`` is left as it is (elmo/params/guard.py refuses it before a stage runs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        _refuse_kind_change(path, tmp_path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # the previous version of this directory output
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Pretty, key-sorted, UTF-8 JSON (stable bytes for DVC metrics and hashes)."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


MODEL_CONFIG_FILE = "config.json"  # every model directory: its config document
MODEL_WEIGHTS_FILE = "weights.safetensors"  # ... and its weights (no pickle anywhere)


def umask_modes(root: str | Path) -> None:
    """Give every file below ``root`` mode 0666 and every directory (``root`` too) 0777, less the umask:
    what a new file gets, whatever wrote or copied it (safetensors writes 0600, copytree keeps the source's)."""
    mask = os.umask(0)
    os.umask(mask)
    root = Path(root)
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def model_directory(directory: str | Path, *, config: dict[str, Any], weights: dict[str, Any],
                    model_format: str) -> Iterator[Path]:
    """The one way a model directory is written (the biLM's, elmo/model/files.py; the classifier's,
    elmo/task/classifier.py): atomically (:func:`atomic_path`: a crash leaves the old directory or
    none). ``config.json`` (``config``: pretty, key-sorted UTF-8 JSON) and ``weights.safetensors``
    (``weights``: name -> CPU tensor, canonical bytes: :func:`canonical_safetensors`) are written
    first; the body writes the rest into the yielded temporary directory; then every file and folder
    gets one mode (:func:`umask_modes`) and the directory is renamed into place."""
    from safetensors.torch import save_file

    with atomic_path(directory) as tmp:
        tmp.mkdir()
        (tmp / MODEL_CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                             encoding="utf-8")
        save_file(weights, str(tmp / MODEL_WEIGHTS_FILE), metadata={"format": "pt", "model": model_format})
        canonical_safetensors(tmp / MODEL_WEIGHTS_FILE)  # the same bytes for the same weights
        yield tmp
        umask_modes(tmp)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_dir(path: str | Path) -> str:
    """One content hash of a directory: sha256 over its files' relative POSIX paths, in sorted order,
    each with the file's sha256. Names and bytes only (not times, permissions or where it lives), so
    the same model directory hashes the same in any workspace: the MLflow training run of a model
    is tagged with it (elmo/tracking.py), and register finds that run by it."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    files = sorted((f.relative_to(root).as_posix(), f) for f in root.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for rel, f in files:
        h.update(f"{rel}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def canonical_safetensors(path: str | Path) -> None:
    """Rewrite a .safetensors file's header canonically, in place (the file must not be in use), and
    make it readable as the umask allows. Every ``save_file`` of the project's models is followed by this.

    safetensors writes ``__metadata__`` from a Rust HashMap, whose key order is random per process,
    so two identical saves could differ in bytes (and DVC would see a changed output). Here the
    metadata keys are sorted and the header re-padded with spaces to 8 bytes; tensors and data are
    unchanged. safetensors also creates its files with mode 0600: a model is for everyone the umask
    allows, as every other file the stages write."""
    path = Path(path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out: dict[str, Any] = {}
    if "__metadata__" in header:
        out["__metadata__"] = dict(sorted(header.pop("__metadata__").items()))
    out.update(header)  # the tensors, in the order safetensors wrote them
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n:])
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
