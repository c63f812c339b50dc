"""The ``pipeline`` flow: every DVC stage in order, one cached Prefect task per stage.

The stage list and order come from dvc.yaml (elmo/dvcrepo.py); a stage is a task named after
it, running ``dvc repro --single-item <stage>`` unless its DVC hashes say it is up to date (then
it is a cache hit and nothing runs; flows/cache.py). One stage runs at a time and one pipeline run
at a time per workspace. The first failing stage fails the flow with its own error; every run,
failed or not, gets a markdown summary artifact and links to its MLflow runs.

``crawl_and_retrain`` is the monthly variant: it reruns crawl even though its params are unchanged
(the archive may have grown; crawl fetches only what changed, and DVC's hashes then decide what
downstream reruns), optionally with other months or another pretrain preset. It continues the last
biLM (``pretrain.init: previous``) unless told otherwise, and says which init pretrain used.

Run once by hand: ``python -m flows run`` (see README, "Orchestration with Prefect").
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.logging import get_run_logger
from prefect.runtime import deployment, flow_run

from elmo.dvcrepo import stage_order
from elmo.errors import StageError
from elmo.params import set_params
from elmo.registry.record import check_recordable, record_run
from flows import summary
from flows.fanout import fanout_spec
from flows.tasks import workspace_task
from flows.workspace import PARAMS_FILE, resolve_root, workspace_lock, workspace_params


def _check_names(kind: str, names: list[str], known: list[str], where: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StageError(f"{where}: {kind} names no stage of dvc.yaml{' to run' if kind == 'force' else ''}: "
                         f"{', '.join(unknown)} (stages: {', '.join(known)})")


@flow(name="pipeline", persist_result=False, log_prints=True)
def pipeline(root: str | None = None, targets: list[str] | None = None, force: list[str] | None = None,
             overrides: list[str] | None = None) -> dict[str, Any]:
    """Bring the workspace's DVC pipeline up to date, one cached task per stage.

    Args:
        root: workspace (DVC repository root); default: the one around the current directory.
        targets: run only these stages and what they depend on (default: every stage).
        force: stages to rerun even if DVC says they are up to date (e.g. ``["crawl"]``).
        overrides: ``dotted.key=value`` changes to params.yaml applied (validated) before the run.
    """
    log = get_run_logger()
    workspace = resolve_root(root)
    params = workspace_params(workspace)
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    results: list[dict[str, Any]] = []
    error: BaseException | None = None
    record: dict[str, Any] | None = None
    with workspace_lock(workspace, params.flows.lock_timeout_s, log=log):
        check_recordable(workspace, params.flows.record)  # a run that could not be recorded does not start
        if overrides:
            params = set_params(workspace / PARAMS_FILE, list(overrides))
            log.info("params.yaml updated: %s", " ".join(overrides))
        every = stage_order(workspace)
        order = stage_order(workspace, targets) if targets else every
        force = list(force or [])
        _check_names("force", force, order, "pipeline(force=...)")
        _check_names("flows.retries", list(params.flows.retries), every, str(workspace / PARAMS_FILE))
        if params.flows.dask.enabled:
            _check_names("flows.dask.stages", list(params.flows.dask.stages), every, str(workspace / PARAMS_FILE))
        fanouts = {name: fanout_spec(name, params.flows.dask) for name in order}
        log.info("stages (from dvc.yaml): %s", " -> ".join(order))
        try:
            for name in order:
                task = workspace_task(
                    workspace, name,
                    retries=params.flows.retries.get(name, 0),
                    retry_delay_s=params.flows.retry_delay_s,
                    retry_jitter=params.flows.retry_jitter,
                    refresh=name in force,
                )
                state = task(str(workspace), name, force=name in force, fanout=fanouts[name], return_state=True)
                if state.is_completed():
                    record = dict(state.result())
                    record["outcome"] = "cached" if state.name == "Cached" else "ran"
                    if record["outcome"] == "cached":
                        record.update(action="cache hit: DVC hashes unchanged, not run", seconds=None)
                    results.append(record)
                    continue
                try:
                    state.result()  # raises the stage's own exception
                    raise RuntimeError(f"stage {name!r} ended in state {state.name}")
                except BaseException as exc:  # re-raised below, after the summary
                    error = exc
                results.append({"stage": name, "outcome": "failed", "action": str(error).splitlines()[0],
                                "seconds": None, "key": None})
                results += [{"stage": rest, "outcome": "not run", "action": f"{name} failed", "seconds": None,
                             "key": None} for rest in order[order.index(name) + 1:]]
                break
            else:  # every stage succeeded: the run records itself (a failed run records nothing)
                record = record_run(workspace, params.flows.record, _run_label(),
                                    register_report=params.register.report,
                                    stages=[r["stage"] for r in results if r["outcome"] == "ran"])
        except BaseException as exc:  # the record failed (or an interrupt): the summary still lists the stages
            error = error or exc
        finally:
            _publish(workspace, params, started, time.perf_counter() - t0, results, error, log, record)
    if error is not None:
        raise error
    return {"root": str(workspace), "stages": results, "record": record}


def _run_label() -> str:
    """How the record's commit names this run: the flow run's name and id, and its deployment
    (this flow's own or, for a subflow such as crawl-and-retrain's, its parent's) when there is one."""
    label = f"flow run {flow_run.name or 'local'} ({flow_run.id or '-'})"
    try:
        dep = deployment.name if deployment.id else None
        if dep is None and flow_run.parent_deployment_id:
            with get_client(sync_client=True) as client:
                dep = client.read_deployment(flow_run.parent_deployment_id).name
    except Exception:  # a label is never worth failing a run's record
        dep = None
    return f"deployment {dep}, {label}" if dep else label


def _publish(workspace, params, started, seconds, results, error, log, record=None) -> None:
    """Write the run's artifacts; a problem here is logged, never hides the stage's own error."""
    try:
        try:
            diff, note = summary.metrics(workspace)
        except Exception as exc:  # the summary still lists the stages
            diff, note = {}, f"metrics could not be read: {exc}"
        runs_note = None
        try:
            runs = summary.mlflow_runs(params, workspace, started)
        except Exception as exc:
            runs, runs_note = [], f"MLflow runs could not be listed: {exc}"
        md = summary.render(
            root=workspace, flow_run_name=flow_run.get_name() or "local", started=started, seconds=seconds,
            results=results, error=None if error is None else str(error), metrics_diff=diff,
            metrics_note=note, runs=runs, runs_note=runs_note, record=record,
            registry=summary.registry(params, workspace),
        )
        summary.publish(md, runs, failed=error is not None)
    except Exception:
        log.exception("could not publish the run summary")


@flow(name="crawl-and-retrain", persist_result=False, log_prints=True)
def crawl_and_retrain(root: str | None = None, months: list[str] | None = None, preset: str | None = None,
                      refresh: list[str] | None = None, init: str | None = "previous") -> dict[str, Any]:
    """Monthly: recrawl the archive and retrain whatever the new data changes.

    Args:
        root: workspace (DVC repository root).
        months: set ``crawl.months`` first (e.g. ``["2019-04", "2019-05"]``); default: keep params.yaml's.
        preset: set ``pretrain.preset`` first (e.g. ``small``); default: keep params.yaml's.
        refresh: stages to rerun regardless of DVC's hashes; default ``["crawl"]``.
        init: set ``pretrain.init`` first: ``previous`` (default) continues the last biLM when there is
            one (pretrain falls back to scratch, and says so, when there is none); ``scratch``; None keeps
            params.yaml's. The result's ``init`` says which one pretrain used, or that it did not run.
    """
    overrides = []
    if months is not None:
        overrides.append(f"crawl.months={json.dumps(list(months))}")
    if preset is not None:
        overrides.append(f"pretrain.preset={json.dumps(preset)}")
    if init is not None:
        overrides.append(f"pretrain.init={json.dumps(init)}")
    result = pipeline(root=root, force=list(refresh) if refresh is not None else ["crawl"], overrides=overrides)
    result["init"] = pretrain_init(result)
    get_run_logger().info("pretrain init: %s", json.dumps(result["init"], ensure_ascii=False))
    return result


def pretrain_init(result: dict[str, Any]) -> dict[str, Any]:
    """Which init this run's pretrain used (metrics/pretrain.json's ``init``), or why there is none."""
    ran = {r["stage"]: r["outcome"] for r in result["stages"]}
    if ran.get("pretrain") != "ran":
        return {"used": None, "note": "pretrain did not run" + (" (up to date)" if "pretrain" in ran else "")}
    workspace = resolve_root(result["root"])
    path = workspace / workspace_params(workspace).pretrain.metrics
    return json.loads(path.read_text(encoding="utf-8"))["init"]
