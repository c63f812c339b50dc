"""Fan a stage's shards out over Dask (prefect-dask), then record the result in dvc.lock.

Enabled per stage by ``flows.dask`` in params.yaml. The stage's module (``flows.dask.stages``
maps stage -> module; the tokenize stage's is ``elmo.stages.tokenize``) exposes three functions,
all taking the validated params and the workspace root:

``plan_shards(params, root) -> list``
    small, JSON-able descriptions of independent pieces of work (e.g. ``{"index": 3, "of": 16}``);
``run_shard(params, root, shard) -> Any``
    does one piece and writes its part to disk; returns a small JSON-able summary (paths, counts);
``finish_shards(params, root, results) -> dict``
    combines the parts into the stage's DVC outputs (atomically) and returns the stage report.

The stage's ``run(params, root)`` (what ``dvc repro`` runs) must be exactly
``finish_shards(params, root, [run_shard(params, root, s) for s in plan_shards(params, root)])``,
so both paths produce the same bytes. Here the shards are Prefect tasks on a
:class:`prefect_dask.DaskTaskRunner` — a local cluster by default, or the scheduler at
``flows.dask.address`` — inside a ``fan-out`` subflow; then the stage's non-persistent outputs are
replaced as ``dvc repro`` would, and ``dvc commit`` records deps, params and outs in dvc.lock.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from elmo.dvcrepo import remove_outs
from elmo.errors import StageError
from elmo.params.flows import DaskParams
from flows import dvc_run
from flows.workspace import workspace_params

PROTOCOL = ("plan_shards", "run_shard", "finish_shards")


def shard_module(stage: str, module_name: str):
    """Import the stage's module and check it exposes the shard protocol."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise StageError(f"flows.dask.stages.{stage}: cannot import {module_name!r}: {err}") from None
    missing = [name for name in PROTOCOL if not callable(getattr(module, name, None))]
    if missing:
        raise StageError(
            f"flows.dask.stages.{stage}: {module_name} does not expose {', '.join(missing)} "
            f"(the shard protocol of flows/fanout.py); disable flows.dask or run it with dvc repro"
        )
    return module


def fanout_spec(stage: str, dask: DaskParams) -> dict[str, Any] | None:
    """What the stage task needs to fan ``stage`` out, or None when it runs through dvc repro."""
    if not dask.enabled or stage not in dask.stages:
        return None
    shard_module(stage, dask.stages[stage])  # fail before the run starts, with a clear message
    return {"module": dask.stages[stage], "dask": dask.model_dump()}


def task_runner(dask: DaskParams):
    """A DaskTaskRunner: the existing cluster at ``address``, else a local cluster."""
    from prefect_dask import DaskTaskRunner

    if dask.address:
        return DaskTaskRunner(address=dask.address)
    kwargs = {
        "n_workers": dask.n_workers,
        "threads_per_worker": dask.threads_per_worker,
        "processes": dask.processes,
        "dashboard_address": "127.0.0.1:0",  # a local cluster listens on this machine only
    }
    if dask.processes:
        kwargs["host"] = "127.0.0.1"  # (threads talk in-process: no scheduler address to bind)
    return DaskTaskRunner(cluster_kwargs=kwargs)


@task(name="shard", cache_policy=NO_CACHE, persist_result=False)
def run_one_shard(module_name: str, params: Any, root: str, shard: Any, index: int) -> Any:
    module = importlib.import_module(module_name)
    return module.run_shard(params, Path(root), shard)


@flow(name="fan-out", persist_result=False)
def fan_out(root: str, stage: str, module_name: str) -> dict[str, Any]:
    """Run every shard of ``stage`` as a task on the flow's (Dask) task runner, then finish."""
    module = shard_module(stage, module_name)
    params = workspace_params(Path(root))
    shards = list(module.plan_shards(params, Path(root)))
    futures = run_one_shard.with_options(task_run_name=f"{stage}-shard-{{index}}").map(
        unmapped(module_name), unmapped(params), unmapped(root), shards, list(range(len(shards)))
    )
    results = [f.result() for f in futures]
    report = module.finish_shards(params, Path(root), results)
    return {"shards": len(shards), "report": report}


def run_fanned_out(root: str, stage: str, spec: dict[str, Any], log) -> dict[str, Any]:
    """Fan ``stage`` out, then make dvc.lock record its outputs (called by the stage task)."""
    dask = DaskParams.model_validate(spec["dask"])
    removed = remove_outs(root, stage)
    if removed:
        log.info("%s: removed outputs before the run, as dvc repro does: %s", stage, ", ".join(removed))
    where = dask.address or f"a local cluster ({dask.n_workers} workers)"
    log.info("%s: fanning shards out over Dask on %s", stage, where)
    result = fan_out.with_options(task_runner=task_runner(dask))(root, stage, spec["module"])
    dvc_run.commit(root, stage, log)
    return result
