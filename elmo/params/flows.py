"""Params of the Prefect orchestration (``flows/``): retries, schedules, the Dask fan-out.

Nothing here imports Prefect: every stage loads params.yaml, and only ``flows/`` needs Prefect.
Cron strings and time zones are checked here cheaply; Prefect checks the cron grammar in full when
the deployments are built (``python -m flows serve``).
"""

from __future__ import annotations

import re
import zoneinfo

from pydantic import Field, field_validator

from elmo.params.base import Section

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"}
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_.\-@:/]+$")


def _check_cron(value: str) -> str:
    value = value.strip()
    if value in _CRON_MACROS:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError("expected a cron string of 5 fields (minute hour day month weekday), e.g. '0 2 * * *'")
    return value


class DaskParams(Section):
    """Fan a stage's shards out over Dask (prefect-dask's DaskTaskRunner) instead of ``dvc repro``.

    A fan-out stage's module exposes ``plan_shards``, ``run_shard`` and ``finish_shards`` (see
    flows/fanout.py); the flow runs the shards as Prefect tasks on the cluster, then records the
    outputs in dvc.lock with ``dvc commit``.
    """

    enabled: bool = False
    # stage name in dvc.yaml -> importable module exposing the shard protocol
    stages: dict[str, str] = {"tokenize": "elmo.stages.tokenize"}
    address: str | None = None  # scheduler of an existing cluster (tcp://host:8786); null = a local cluster
    n_workers: int = Field(2, ge=1)  # local cluster only
    threads_per_worker: int = Field(1, ge=1)  # local cluster only
    processes: bool = True  # local cluster: worker processes (true) or threads in this process (false)

    @field_validator("stages")
    @classmethod
    def _modules_are_dotted_names(cls, v: dict[str, str]) -> dict[str, str]:
        for stage, module in v.items():
            if not _STAGE_NAME.match(stage):
                raise ValueError(f"{stage!r} is not a DVC stage name")
            if not re.match(r"^[A-Za-z_][\w.]*$", module):
                raise ValueError(f"{stage}: {module!r} is not an importable module name")
        return v


class RecordParams(Section):
    """What a successful pipeline run records (elmo/registry/record.py): a git commit of exactly what
    it changed among dvc.lock, the params files and the git-tracked (``cache: false``) outputs such
    as metrics/ and plots/, then ``dvc push`` of its outputs to the default DVC remote.

    Used by ``elmo repro`` (so ``make pipeline``), ``python -m flows run`` and both deployments.
    """

    enabled: bool = True
    # the branch records go on: null = whichever branch is checked out; a name = refuse to record
    # (the run fails before its first stage) when another branch, or no branch, is checked out
    branch: str | None = None
    push: bool = True  # `dvc push` to the default remote after the commit (rollback from a fresh clone)

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or v.startswith("-") or any(c in v for c in " ~^:?*[\\")):
            raise ValueError(f"{v!r} is not a git branch name")
        return v


class FlowsParams(Section):
    # Prefect retries of a whole stage (stage name -> count), with exponential backoff: the n-th
    # retry waits retry_delay_s * 2**(n-1) seconds, +- retry_jitter of that.
    retries: dict[str, int] = {"crawl": 3}
    retry_delay_s: float = Field(30.0, ge=0)
    retry_jitter: float = Field(0.2, ge=0, le=1)
    # a second pipeline run on the same workspace waits this long for the first one, then fails
    lock_timeout_s: float = Field(6 * 3600.0, ge=0)
    # links to MLflow runs in each flow run's artifacts point here (`mlflow ui` serves it)
    mlflow_ui: str = "http://127.0.0.1:5000"
    # deployments (flows/deployments.py): nightly pipeline, monthly crawl-and-retrain
    timezone: str = "Asia/Seoul"
    nightly_cron: str = "0 2 * * *"
    monthly_cron: str = "0 3 1 * *"
    server_port: int = Field(4200, ge=1, le=65535)  # the project's local Prefect server (127.0.0.1)
    dask: DaskParams = DaskParams()
    record: RecordParams = RecordParams()

    @field_validator("retries")
    @classmethod
    def _retries(cls, v: dict[str, int]) -> dict[str, int]:
        for stage, n in v.items():
            if not _STAGE_NAME.match(stage):
                raise ValueError(f"{stage!r} is not a DVC stage name")
            if n < 0:
                raise ValueError(f"{stage}: retries must be >= 0 (got {n})")
        return v

    @field_validator("nightly_cron", "monthly_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        return _check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r} (e.g. Asia/Seoul, UTC)") from None
        return v

    @field_validator("mlflow_ui")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("expected an http(s) URL")
        return v.rstrip("/")
