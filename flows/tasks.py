"""The one Prefect task: run one DVC stage, cached by DVC's hashes (flows/cache.py).

It passes paths and hashes only: its result is a small JSON record of what happened and the
stage's output hashes as dvc.lock now records them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from elmo.dvcrepo import stage_state
from flows import cache, dvc_run, fanout as fan

RUN_CACHE_MESSAGE = "is cached - skipping run"  # what `dvc repro` prints when its run-cache restores outputs


@task(
    name="stage",
    cache_policy=cache.DvcStageCache(),
    persist_result=True,
    result_serializer="json",
)
def run_stage(root: str, stage: str, force: bool = False, fanout: dict[str, Any] | None = None) -> dict[str, Any]:
    """Bring DVC stage ``stage`` of workspace ``root`` up to date and return what happened.

    ``force`` reruns it even when DVC says it is up to date (``dvc repro --force``).
    ``fanout`` (``{"module": ..., "dask": {...}}``) runs its shards on Dask instead of
    ``dvc repro``, then records the outputs with ``dvc commit`` (flows/fanout.py).
    """
    log = get_run_logger()
    started = time.perf_counter()
    before = stage_state(root, stage)
    if fanout is not None and (force or not before.up_to_date):
        report = fan.run_fanned_out(root, stage, fanout, log)
        action = f"fanned out over Dask ({report.get('shards', '?')} shards) and committed"
    else:
        lines = dvc_run.repro(root, stage, log, force=force)
        if before.up_to_date and not force:
            action = "up to date (dvc repro skipped it)"
        elif any(RUN_CACHE_MESSAGE in line for line in lines):
            action = "restored from the DVC run-cache"
        else:
            action = "ran"
    after = stage_state(root, stage)
    result = {
        "stage": stage,
        "action": action,
        "seconds": round(time.perf_counter() - started, 3),
        "dvc_changes": before.changes,
        "key": after.key,
        "outs": after.outs,
    }
    if not cache.record(after, result):
        log.warning("%s: dvc status still reports changes after running (%s); not cached", stage, after.describe())
    log.info("%s: %s in %.1f s", stage, action, result["seconds"])
    return result


def workspace_task(root: Path, stage: str, *, retries: int, retry_delay_s: float, retry_jitter: float,
                   refresh: bool):
    """``run_stage`` configured for one stage of one workspace (name, retries, storage, refresh)."""
    return run_stage.with_options(
        name=stage,
        task_run_name=stage,
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=retry_delay_s) if retries else 0,
        retry_jitter_factor=retry_jitter if retries else None,
        refresh_cache=refresh,
        result_storage=cache.result_storage(root),
    )
