"""fetch_task: download the labeled task data (default: KLUE YNAT v1.1 train and dev) for finetune.

``finetune.task.source`` is an http(s) base URL or a local directory holding ``train_file`` and
``dev_file`` (the official KLUE layout). Each file goes through the project's one downloader
(:func:`elmo.crawl.fetch_file`: retries, verification, atomic write, sha256), is checked to be a
readable dataset of the configured format, and is recorded in ``<data_dir>/manifest.json``
(url, bytes, sha256, records). A rerun with an unchanged source downloads nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from elmo.crawl import FetchError, NotFound, RetryPolicy, VerifyError, fetch_file
from elmo.crawl.source import overlap, source_kind
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.log import get_logger
from elmo.stages import stage_report
from elmo.task.data import detect_format, read_records

log = get_logger("fetch_task")
MANIFEST = "manifest.json"


def file_location(source: str, name: str, root: Path, data_dir: Path | None = None,
                  key: str = "finetune.tasks.ynat") -> str:
    """The URL or path of ``name`` in ``source``; a local source must not overlap ``data_dir``.
    ``key``: the task's params key, which messages name."""
    try:
        kind = source_kind(source)
    except ValueError as err:
        raise StageError(f"{key}.source: {err}") from None
    if kind == "http":
        return (source if source.endswith("/") else source + "/") + name
    base = Path(source).expanduser()
    base = base if base.is_absolute() else root / base
    if not base.is_dir():
        raise FileNotFoundError(f"{key}.source: {source}: no such directory")
    how = overlap(base, data_dir) if data_dir is not None else None
    if how:
        raise StageError(f"{key}.data_dir {str(data_dir)!r} {how} {key}.source {source!r}; "
                         "fetch_task never writes in its source: choose a data_dir outside it")
    return str(base / name)


def run(params, root: Path) -> dict:
    t = params.finetune.task
    key = f"finetune.tasks.{t.name}"
    out = root / t.data_dir
    for name in (t.train_file, t.dev_file):
        file_location(t.source, name, root, out, key)  # refuses an overlap before anything is written
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    previous = {}
    if manifest_path.is_file():
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8")).get("files", {})
        except (ValueError, AttributeError):  # a damaged manifest only costs a download
            previous = {}
    previous = previous if isinstance(previous, dict) else {}
    policy = RetryPolicy.from_params(t)
    files, report = {}, {"source": t.source, "files": {}}
    for name in (t.train_file, t.dev_file):
        url = file_location(t.source, name, root, key=key)
        prev = previous.get(name)
        if not isinstance(prev, dict) or prev.get("url") != url:
            prev = None
        verify = _verifier_for(t, name)
        try:
            res = fetch_file(url, out / name, verify=verify, policy=policy, previous=prev)
        except NotFound:
            raise StageError(f"{key}: {url}: not found "
                             f"(check {key}.source and the file names)") from None
        except FetchError as err:
            raise StageError(f"{key}: {err}") from None
        files[name] = res.entry()
        report["files"][name] = {"status": res.status, "bytes": res.bytes, "records": res.info.get("records"),
                                 "sha256": res.sha256}
        log.info("%s: %s (%d bytes)", name, res.status, res.bytes)
    atomic_write_json(manifest_path, {"source": t.source, "files": files})
    return stage_report("fetch_task", params, report)


def _verifier_for(t, name: str):
    """The verifier of one file: its format is detected from ``name`` (the temp file has another suffix)."""
    fmt = detect_format(Path(name), t.format)

    def verify(tmp: Path) -> dict:
        try:
            records, rep = read_records(tmp, text_field=t.text_field, label_field=t.label_field,
                                        id_field=t.id_field, fmt=fmt, invalid_records="skip", empty_text="skip",
                                        delimiter=t.delimiter)
        except StageError as err:
            raise VerifyError(str(err).replace(str(tmp), name)) from None
        return {"records": len(records), "skipped": sum(rep.skipped.values())}

    return verify
