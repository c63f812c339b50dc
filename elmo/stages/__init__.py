"""One module per pipeline stage, each exposing ``run(params: Params, root: Path) -> dict``.

``root`` is the workspace (the repository root); every path in params is relative to it.
The returned report is JSON-serialisable and is what the CLI prints and Prefect records.

Every stage's report has one shape (:func:`stage_report` builds it, :func:`check_report` checks it):

* ``stage`` — the stage's name,
* ``outputs`` — what it wrote, ``{param key: path as given in params.yaml}`` (workspace-relative
  unless params.yaml says otherwise), taken from the output guard (``elmo.params.guard.stage_uses``),
* ``metrics_file`` — its DVC metrics file (``METRICS_PARAM``), or None for a stage without one,
* then the stage's own fields, exactly those ``REPORT_FIELDS[stage]`` declares (no path in them:
  paths are ``outputs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elmo.params.guard import stage_uses

STAGES = ("crawl", "clean", "tokenize", "vocab", "pretrain", "fetch_task", "finetune", "register")

COMMON_FIELDS = ("stage", "outputs", "metrics_file")
# The param naming each stage's DVC metrics file (dvc.yaml `metrics:`); not repeated in `outputs`.
METRICS_PARAM = {"clean": "clean.metrics", "tokenize": "tokenize.metrics", "vocab": "vocab.metrics",
                 "pretrain": "pretrain.metrics", "finetune": "finetune.metrics", "register": "register.report"}
REPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "crawl": ("source", "months", "fetched", "unchanged", "missing", "removed", "not_ours", "leftovers_removed",
              "retries", "bytes", "lines", "transferred_bytes", "seconds", "mb_per_s"),
    "clean": ("read", "kept", "duplicates", "quarantined", "splits", "quarantine_reasons", "duplicate_ids", "files",
              "missing_months", "seconds", "rows_per_s", "mb_per_s"),
    "tokenize": ("workers", "seconds", "chars_per_s", "tokenizer", "fields", "splits", "total", "leftovers_removed"),
    "vocab": ("sha256", "words", "chars", "splits"),
    "pretrain": ("checkpoints", "mlflow_run_id", "seconds", "preset", "parameters", "steps", "epochs", "ended_by",
                 "train_minutes", "tokens_per_s", "tokens_trained", "train_split_tokens", "init", "months", "drift",
                 "selected", "valid", "test"),
    "fetch_task": ("source", "files"),
    "finetune": ("bilm_mode", "macro_f1", "accuracy", "best_epoch", "ended_by", "comparison", "seconds_total"),
    "register": ("alias", "git_commit", "models"),
}


class ReportShapeError(ValueError):
    """A stage's report does not have the one shape (a programming error, named by stage and key)."""


def check_report(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """``report`` if it has the shape (module docstring); else :class:`ReportShapeError` naming the
    stray and the missing keys."""
    stage = report.get("stage")
    if stage not in REPORT_FIELDS:
        raise ReportShapeError(f"report: stage is {stage!r}, not one of {', '.join(STAGES)}")
    want = set(COMMON_FIELDS) | set(REPORT_FIELDS[stage])
    stray, missing = sorted(set(report) - want), sorted(want - set(report))
    if stray or missing:
        raise ReportShapeError(f"{stage} report: stray keys {stray}, missing keys {missing} "
                               "(a stage's own fields are declared in elmo.stages.REPORT_FIELDS)")
    outputs, metrics_file = report["outputs"], report["metrics_file"]
    if not isinstance(outputs, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in outputs.items()):
        raise ReportShapeError(f"{stage} report: outputs must map param keys to paths, got {outputs!r}")
    if (metrics_file is None) != (stage not in METRICS_PARAM) or not isinstance(metrics_file, str | None):
        raise ReportShapeError(f"{stage} report: metrics_file {metrics_file!r} (expected the path of "
                               f"{METRICS_PARAM.get(stage, 'no metrics file')})")
    return report


def stage_report(stage: str, params: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The report of ``stage``: its outputs and metrics file as params.yaml names them, then ``fields``
    (the stage's own, ``REPORT_FIELDS[stage]``); checked by :func:`check_report`."""
    if clash := sorted(set(fields) & set(COMMON_FIELDS)):
        raise ReportShapeError(f"{stage} report: its own fields may not be named {clash}")
    metrics_key = METRICS_PARAM.get(stage)
    written = {u.key: u.path for u in stage_uses(params, stage) if u.output}
    metrics_file = written.pop(metrics_key) if metrics_key else None
    return dict(check_report({"stage": stage, "outputs": written, "metrics_file": metrics_file, **fields}))
